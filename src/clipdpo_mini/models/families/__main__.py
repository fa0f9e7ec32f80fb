"""python -m clipdpo_mini.models.families KEY OUT_DIR: write one family's checkpoint, print OUT_DIR."""

import sys

from clipdpo_mini.models.families import all_families, build_family

if len(sys.argv) != 3:
    keys = ", ".join(sorted(all_families()))
    sys.exit(f"usage: python -m clipdpo_mini.models.families KEY OUT_DIR (KEY: {keys})")
print(build_family(sys.argv[1], sys.argv[2]))

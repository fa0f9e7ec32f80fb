import subprocess
import sys

from tests.conftest import REPO, cli_env


def test_cli_reference_is_generated_from_the_cli():
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_cli_doc.py"), "--check"],
        capture_output=True,
        env=cli_env(),
    )
    assert r.returncode == 0, r.stderr.decode()

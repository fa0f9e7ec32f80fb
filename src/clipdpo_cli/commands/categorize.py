"""`clipdpo categorize`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "categorize"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "CLIP image categories (issue: CLIP stages) [not built yet]"
command = placeholder(NAME, "CLIP image categories (issue: CLIP stages)")

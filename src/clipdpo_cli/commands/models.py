"""`clipdpo models`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "models"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "list the CLIP model registry (issue: CLIP stages) [not built yet]"
command = placeholder(NAME, "list the CLIP model registry (issue: CLIP stages)")

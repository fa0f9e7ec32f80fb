"""`clipdpo score`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "score"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "CLIP image-text scores (issue: CLIP stages) [not built yet]"
command = placeholder(NAME, "CLIP image-text scores (issue: CLIP stages)")

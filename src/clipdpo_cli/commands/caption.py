"""`clipdpo caption`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "caption"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "LVLM captions of images (issue: generation stages) [not built yet]"
command = placeholder(NAME, "LVLM captions of images (issue: generation stages)")

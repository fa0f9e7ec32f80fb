"""`clipdpo eval-amber`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "eval-amber"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "AMBER hallucination benchmark (issue: eval-amber) [not built yet]"
command = placeholder(NAME, "AMBER hallucination benchmark (issue: eval-amber)")

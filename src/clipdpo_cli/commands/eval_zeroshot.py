"""`clipdpo eval-zeroshot`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "eval-zeroshot"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "caption-based zero-shot classification (issue: eval-zeroshot) [not built yet]"
command = placeholder(NAME, "caption-based zero-shot classification (issue: eval-zeroshot)")

"""`clipdpo train`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "train"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "DPO fine-tuning of the LVLM (issue: train) [not built yet]"
command = placeholder(NAME, "DPO fine-tuning of the LVLM (issue: train)")

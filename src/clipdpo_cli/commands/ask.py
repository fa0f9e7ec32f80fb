"""`clipdpo ask`: not built yet."""

from clipdpo_cli.commands.not_built import placeholder

NAME = "ask"
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
SUMMARY = "LLM questions with positive and negative answers (issue: generation stages) [not built yet]"
command = placeholder(NAME, "LLM questions with positive and negative answers (issue: generation stages)")

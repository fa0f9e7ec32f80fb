"""`clipdpo probe`: the Sec. 3.1 / Fig. 2 probe, how the LVLM and CLIP scorers rank hallucinated captions."""

from typing import Annotated, Any

import typer

from clipdpo_cli.commands.options import QuietOpt
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.log import say
from clipdpo_cli.io.setting import declared
from clipdpo_cli.stages.probe import ProbeSettings

NAME = "probe"
SUMMARY = "Sec. 3.1 probe: per hallucination type, how often each scorer corrects the LVLM's preference."


@settings_options(declared(ProbeSettings), {})
def command(
    settings: dict[str, Any],
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FILES",
            help="Scored originals and variants (JSONL, .gz ok, '-' stdin; default stdin). Records with the "
            "same id in several files are merged field by field.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write the result JSON here, not stdout.")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """clipdpo probe probe.dfn.jsonl probe.siglip.jsonl --score-field dfn --score-field siglip > fig2.json

    Reads originals (hallucination "none") and their hallucinated variants (existence, attribute,
    relation; `from` = the original's id). Per type: how many variants the LVLM prefers to their original,
    and how many of those each scorer corrects by ranking the original higher (the paper's Fig. 2). A
    variant without its original or a numeric field is skipped and counted. JSON to stdout, table to stderr.
    """
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.io.jsonl import read_jsonl, write_json
    from clipdpo_cli.io.outputs import check_outputs
    from clipdpo_cli.stages.probe import format_table, merge_by_id, probe

    paths = inputs or ["-"]
    if paths.count("-") > 1:
        raise UsageError("stdin ('-') can be read only once")
    check_outputs([("-o", output)], [("", path) for path in paths])
    options = ProbeSettings(**settings)
    records = merge_by_id(record for path in paths for record in read_jsonl(path))
    result = probe(records, options.lvlm_field, options.score_field)
    write_json(result, output)
    say(format_table(result), quiet)

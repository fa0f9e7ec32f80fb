"""`clipdpo models`: the CLIP scorer registry (aliases, what they resolve to, whether cached here)."""

from typing import Annotated

import typer

from clipdpo_cli.commands.clip_options import CacheDirOpt

NAME = "models"
SUMMARY = "List the CLIP scorer aliases, what they resolve to, and whether their weights are cached."


def print_registry(as_json: bool = False, cache_dir: str | None = None) -> None:
    import orjson

    from clipdpo_cli.models.clip_registry import registry_rows

    rows = registry_rows(cache_dir)
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    header = ("alias", "open_clip name", "pretrained", "Hugging Face repo", "cached", "note")
    table = [
        (
            r["alias"] + (" *" if r["default"] else ""),
            r["arch"],
            r["pretrained"],
            r["hf_repo"] or "",
            "yes" if r["cached"] else "no",
            r["note"],
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    for line in (header, *table):
        typer.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    typer.echo(
        "\n* default. Also accepted: NAME:TAG for any open_clip pretrained tag, NAME:/path/to/checkpoint, "
        "hf-hub:ORG/REPO, local-dir:/path, and transformers:ID_OR_DIR (a transformers CLIP, SigLIP or "
        "SigLIP-2)."
    )


def command(
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per alias instead of a table.")
    ] = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """clipdpo models  (then: clipdpo score --model dfn-h14 ...)

    The CLIP scorers of the paper by short alias, the open_clip architecture and pretrained tag each
    resolves to, the Hugging Face repository its weights come from, and whether they are in the local cache.
    """
    print_registry(as_json=json_lines, cache_dir=cache_dir)

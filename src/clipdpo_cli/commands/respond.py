"""`clipdpo respond`: an LVLM's response to each query {id, image, prompt} (benchmarks' generation pass)."""

import enum
from typing import Annotated

import typer

from clipdpo_cli.commands.clip_options import ImageRootOpt, WorkersOpt
from clipdpo_cli.commands.generation import (
    BatchSizeOpt,
    ChatTemplateOpt,
    Dtype,
    DtypeOpt,
    MaxNewTokensOpt,
    MaxPixelsOpt,
    SeedOpt,
    TemperatureOpt,
    TopPOpt,
    engine_options,
)
from clipdpo_cli.commands.options import DeviceOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.models.generator import EngineSettings

NAME = "respond"
SUMMARY = "Answer queries {id, image, prompt} with an LVLM (yes/no ones by next-token probabilities)."

_INPUT = (
    "Query records {id, image, prompt} (and \"yes_no\": true for a yes/no question): JSONL ('-' is stdin), "
    "JSON, a HF dataset, parquet, arrow or webdataset shards (see --input-format)."
)


class YesNo(str, enum.Enum):
    prob = "prob"
    generate = "generate"


YesNoOpt = Annotated[
    YesNo,
    typer.Option(help="Yes/no queries: compare the next-token probabilities of Yes and No (prob), or "
                 "generate freely and take the leading yes/no (generate)."),
]  # fmt: skip
YesNoMaxNewTokensOpt = Annotated[
    int, typer.Option(min=1, help="Token budget of a free yes/no answer (--yes-no generate).")
]


@stage_command(input_help=_INPUT)
@engine_options
def command(
    io: IOSettings,
    engine: EngineSettings,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="LVLM: Hugging Face id or local directory (image-text-to-text); --engine openai: the served "
            "model's name.",
        ),
    ],
    yes_no: YesNoOpt = YesNo.prob,
    max_new_tokens: MaxNewTokensOpt = 512,
    yes_no_max_new_tokens: YesNoMaxNewTokensOpt = 8,
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 1.0,
    seed: SeedOpt = None,
    batch_size: BatchSizeOpt = 8,
    workers: WorkersOpt = 4,
    image_root: ImageRootOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """clipdpo eval-amber --amber-root A --write-queries q.jsonl && clipdpo respond q.jsonl -m out/ > r.jsonl

    One record per query: the query's fields plus response, model and mode (describe, yes_no_prob with
    p_yes and p_no, or yes_no_generate with the raw text). Greedy by default (temperature 0).
    """
    from clipdpo_cli.models.generator import open_image_text_generator
    from clipdpo_cli.models.hub import read_chat_template
    from clipdpo_cli.models.sampling import check_sampling
    from clipdpo_cli.stages.respond import RespondSettings, respond_records

    check_sampling(temperature, top_p, max_new_tokens)
    settings = RespondSettings(
        yes_no=yes_no.value, max_new_tokens=max_new_tokens, yes_no_max_new_tokens=yes_no_max_new_tokens,
        temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size, image_root=image_root,
        workers=workers,
    )  # fmt: skip
    template = read_chat_template(chat_template)
    lvlm = open_image_text_generator(model, engine, device, dtype.value, template, max_pixels)
    run_stage(NAME, io, lambda records, ctx: respond_records(records, lvlm, settings, ctx), one_to_one=True)

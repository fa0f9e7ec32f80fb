"""Caption generation (paper Sec. 4.1): each image is described by the LVLM under several prompts and samples.

For every input image, one record per (prompt, sample): its id is make_id("caption", image, model, prompt,
sample, seed, temperature, top_p, max_new_tokens, and --max-pixels and the --chat-template's digest when
given), so the same command gives the same ids, and changing the model or a setting gives new ones. `image`
is the record's `image` as written, or, for an image that came as bytes, its content hash (`image_hash`,
io.sources), so the ids do not depend on where -o / --extract-images-to put the file.

The caption goes to `text`; a `text` the input record already had (a dataset's `--text-column`, a
webdataset's `txt`) is kept as `source_text`, never overwritten. The rows of all images are generated in
batches of `batch_size` (across image boundaries), the rows of one prompt together
(stages.batched.run_in_batches with the prompt as key: a prompt's answers run to similar lengths, so a batch
pads less); the records of one image are emitted together, in prompt order, and images in input order. An
image listed again in the input (the same file, however its
path is spelled: `a.jpg`, `./a.jpg`, or images that came as the same bytes) is captioned once, with the fields
of its first record; the repeats are dropped and counted ("duplicate image"): the same 'image' would repeat
the captions' ids, and another spelling would caption the image twice.

Reproducibility: with a seed, every caption is sampled from its own random stream, seeded from the seed and
the caption's id (models.sampling). A caption then does not depend on the batch size, the order of the input,
sharding or resuming, up to the last-bit differences that batched matrix products can make in the logits.

POVID's distorted image (`--image-noise STEPS`, ImageNoise): each row's decoded image is noised by STEPS
forward-diffusion steps (io.images.add_diffusion_noise) before the model sees it, from a draw seeded by the
seed and the caption's id (so it is fixed, with or without --seed); the noise is part of the id, and each
record says which draw it saw (`image_noise: {steps, schedule, seed}`), so `pair --source noised` can pair it
with a clean caption of the same image and prompt.
"""

import enum
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.images import NOISE_SCHEDULES, add_diffusion_noise, resolve_image
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.textfiles import read_text_file
from clipdpo_cli.io.values import enum_value
from clipdpo_cli.models.generator import ImageTextGenerator
from clipdpo_cli.models.sampling import job_seed
from clipdpo_cli.stages.batched import Group, batching, prefetch_images, run_in_batches


def read_prompts(path: str | None = None) -> list[str]:
    """Prompts, one per line ('#' comments, blank lines and repeats ignored); by default the packaged five."""
    if path is None:
        text = (
            resources.files("clipdpo_cli").joinpath("data", "caption_prompts.txt").read_text(encoding="utf-8")
        )
        where = "the default prompts"
    else:
        text = read_text_file(path, "prompts file")
        where = path
    lines = (line.strip() for line in text.splitlines())
    prompts = list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))
    if not prompts:
        raise InputError(f"no prompts in {where}")
    return prompts


def _prompts_option(path: str | None = None) -> tuple[str, ...]:
    return tuple(read_prompts(path))


NoiseSchedule = enum.Enum("NoiseSchedule", {name: name for name in NOISE_SCHEDULES}, type=str)


@dataclass(frozen=True)
class ImageNoise:
    """`caption --image-noise`: each row sees its image noised by `steps` forward-diffusion steps
    (io.images.add_diffusion_noise), from a draw seeded by --seed and the caption's id (`seed`)."""

    steps: int
    schedule: str = "sigmoid"

    def fields(self) -> dict[str, Any]:
        """What a caption id and record name the noise by (the record adds its own draw's seed)."""
        return {"steps": self.steps, "schedule": self.schedule}

    def seed(self, run_seed: int | None, caption_id: str) -> int:
        """The noise draw of one caption: fixed by --seed and the caption's id, with or without --seed."""
        return int(make_id("image_noise", run_seed, caption_id), 16) >> 1

    def apply(self, image: Any, run_seed: int | None, caption_id: str) -> Any:
        return add_diffusion_noise(image, self.steps, self.seed(run_seed, caption_id), self.schedule)


@dataclass(frozen=True)
class CaptionSettings:
    """How `caption` prompts and samples (each option field is also a `clipdpo caption` option; the sampling
    fields are the generation group's, models/generation_settings.py, with these defaults)."""

    prompts: tuple[str, ...] = setting(
        help="File of prompts, one per line ('#' comments); default: 5 built-in.",
        default_factory=_prompts_option, cli_type=str | None, cli_default=None, parse=_prompts_option,
    )  # fmt: skip
    samples_per_prompt: int = setting(1, "Captions sampled per prompt and image.", min=1)
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 128
    seed: int | None = None
    batch_size: int = setting(
        16,
        "Rows (image x prompt x sample) per generate call; auto: 16 on CPU, on a GPU the most rows (a power "
        "of two up to 256) whose KV cache of 1024 prompt + --max-new-tokens tokens fits in 70% of the memory "
        "free after loading. The output does not depend on it.",
        cli_type=int | None, cli_default=None, min=1, show_default="auto",
    )  # fmt: skip
    image_root: str | None = setting(None, shared=True)  # commands/clip_options.py ImageRootOpt
    workers: int = setting(4, shared=True)  # threads decoding images ahead (WorkersOpt)
    max_pixels: int | None = None  # --max-pixels, when given (it changes what the model sees)
    chat_template_digest: str | None = None  # of --chat-template, when given
    # --image-noise: POVID's noised image, when given (the steps as typed become an ImageNoise below)
    image_noise: ImageNoise | None = setting(
        None,
        "POVID's distorted image: show the model each image noised by this many forward-diffusion steps "
        "of 1000 (POVID: 500), a draw fixed by --seed and the caption's id; recorded as image_noise. "
        "For `pair --source noised`.",
        cli_type=int | None, min=0, max=1000, show_default=False,
    )  # fmt: skip
    image_noise_schedule: str = setting(
        "sigmoid",
        "--image-noise's beta schedule: sigmoid (POVID's: 1e-5..5e-3) or linear (DDPM's: 1e-4..0.02).",
        cli_type=NoiseSchedule, cli_default=NoiseSchedule.sigmoid, parse=enum_value,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.image_noise, int):  # the option's steps, with the schedule beside them
            object.__setattr__(self, "image_noise", ImageNoise(self.image_noise, self.image_noise_schedule))

    def extra_fields(self) -> dict[str, Any]:
        """The settings that are only part of ids and records when given."""
        out: dict[str, Any] = {}
        if self.max_pixels is not None:
            out["max_pixels"] = self.max_pixels
        if self.chat_template_digest is not None:
            out["chat_template_sha256"] = self.chat_template_digest
        if self.image_noise is not None:
            out["image_noise"] = self.image_noise.fields()
        return out


@dataclass(frozen=True)
class CaptionJob:
    id: str
    prompt: str
    sample: int
    seed: int | None


SOURCE_TEXT = "source_text"  # the input record's own `text`, kept beside the caption


def image_key(record: dict[str, Any]) -> str:
    """What a caption id names the image by: its content hash when it came as bytes, else `image`."""
    from clipdpo_cli.io.sources import IMAGE_HASH

    digest = record.get(IMAGE_HASH)
    return f"bytes:{digest}" if isinstance(digest, str) and digest else str(record["image"])


def caption_jobs(image: str, model: str, settings: CaptionSettings) -> list[CaptionJob]:
    """Every (prompt, sample) row of one image, with its id and its own seed."""
    jobs = []
    for prompt in settings.prompts:
        for sample in range(settings.samples_per_prompt):
            cid = make_id(
                "caption", image, model, prompt, sample, settings.seed,
                settings.temperature, settings.top_p, settings.max_new_tokens,
                *(f"{k}={v}" for k, v in settings.extra_fields().items()),
            )  # fmt: skip
            jobs.append(CaptionJob(cid, prompt, sample, job_seed(settings.seed, cid)))
    return jobs


def caption_record(
    record: dict[str, Any], job: CaptionJob, text: str, model: str, s: CaptionSettings
) -> dict:
    """The output record: the input's own fields, then the caption contract fields."""
    out = {k: v for k, v in record.items() if k != "id"}
    if "text" in record and SOURCE_TEXT not in record:
        out[SOURCE_TEXT] = out.pop("text")
    out.update(
        id=job.id,
        image=record["image"],
        kind="caption",
        text=text,
        prompt=job.prompt,
        model=model,
        sample=job.sample,
        temperature=s.temperature,
        top_p=s.top_p,
        max_new_tokens=s.max_new_tokens,
        seed=s.seed,
        **s.extra_fields(),
    )
    if s.image_noise is not None:  # the draw this caption's image got, for downstream stages (pair)
        out["image_noise"] = {**s.image_noise.fields(), "seed": s.image_noise.seed(s.seed, job.id)}
    return {"id": out.pop("id"), **out}


def caption_records(
    records: Iterable[dict[str, Any]],
    lvlm: ImageTextGenerator,
    settings: CaptionSettings,
    ctx: StageContext | None = None,
) -> Iterator[dict[str, Any]]:
    """Caption records for image records ({"image": path, ...}) with `lvlm` (e.g. a models.lvlm.Lvlm)."""
    ctx = ctx or StageContext("caption")
    if settings.samples_per_prompt < 1:
        raise ValueError("samples_per_prompt must be >= 1")
    model = lvlm.name

    def with_jobs() -> Iterator[tuple[dict[str, Any], list[CaptionJob]]]:
        seen: set[str] = set()  # images captioned (or resumed) in this run: a repeat would repeat their ids
        for record in records:
            image = record.get("image")
            if not isinstance(image, str):
                yield record, []  # the image loader reports it
                continue
            file = os.path.normpath(resolve_image(image, settings.image_root))  # 'a.jpg' is './a.jpg'
            if file in seen:
                ctx.drop(record, "duplicate image")
                continue
            seen.add(file)
            jobs = caption_jobs(image_key(record), model, settings)
            todo = [job for job in jobs if job.id not in ctx.done]
            ctx.stats.resumed += len(jobs) - len(todo)
            if todo:
                yield record, todo

    def groups() -> Iterator[Group]:
        for record, jobs, image in prefetch_images(with_jobs(), settings.image_root, settings.workers):
            if isinstance(image, BadRecord):
                ctx.bad(record, image)
                continue
            yield Group(record, jobs, payload=image)

    def image_of(group: Group, job: CaptionJob) -> Any:
        noise = settings.image_noise
        return group.payload if noise is None else noise.apply(group.payload, settings.seed, job.id)

    def run_batch(items: list[tuple[Group, CaptionJob]]) -> list[str]:
        return lvlm.generate(
            [image_of(group, job) for group, job in items],
            [job.prompt for _, job in items],
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=None if settings.seed is None else [job.seed for _, job in items],
        )

    size, in_flight = batching(lvlm, settings.batch_size)
    by_prompt = run_in_batches(
        groups(), size, run_batch, key=lambda job: job.prompt, window=size * len(settings.prompts),
        in_flight=in_flight,
    )  # fmt: skip
    for group in by_prompt:
        group.payload = None  # release the image
        if group.error is not None:  # a request the server kept failing (--engine openai)
            ctx.bad(group.record, group.error)
            continue
        for job, text in zip(group.jobs, group.results, strict=True):
            yield caption_record(group.record, job, text, model, settings)

"""`eval-chair` end to end: export the description queries, answer them (the respond stage, optional),
score them against COCO, report.

ChairEvalSettings' fields are also the command's options (io.setting; the shared ones are declared in
commands/eval_options.py); no `from __future__ import annotations` here, so their types are the options'.
"""

from dataclasses import dataclass
from typing import Any

from clipdpo_cli.eval.answer import (
    AnswerGeneration,
    answer_queries,
    answered_only,
    model_pass,
    write_query_file,
)
from clipdpo_cli.eval.chair.coco import CocoTruth, default_captions
from clipdpo_cli.eval.chair.evaluate import format_table, image_id_of, score_responses
from clipdpo_cli.eval.chair.queries import query_records, read_image_ids, read_prompts
from clipdpo_cli.eval.chair.words import CocoWords, default_synonyms, read_synonyms
from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.jsonl import JsonlWriter, read_jsonl, write_json
from clipdpo_cli.io.log import say
from clipdpo_cli.io.outputs import check_outputs
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.textfiles import read_text_file
from clipdpo_cli.stages.respond import RespondSettings


@dataclass
class ChairEvalSettings(AnswerGeneration):
    """eval-chair's options (each field a `clipdpo eval-chair` option), and the generation engine's."""

    coco_annotations: str = setting(help="COCO instance annotations of the images (instances_val2014.json).")
    coco_captions: str | None = setting(
        None, "COCO captions, whose objects count as ground truth too, as in the reference (default: "
        "captions_*.json beside --coco-annotations).", show_default=False,
    )  # fmt: skip
    no_captions: bool = setting(
        False, "Ground truth from the instance annotations only.", flags=("--no-captions",)
    )
    image_root: str | None = setting(None, shared=True)  # COCO val2014, joined to the files' image names
    image_ids: str | None = setting(
        None, "The images to describe: one COCO id a line, or JSON lines {image_id, question} (Object "
        "HalBench's 300); default every image of --coco-annotations. Scoring: only these images count, and "
        "each needs a description.", show_default=False,
    )  # fmt: skip
    prompts: str | None = setting(
        None, "Description prompts, one a line, taken in turn per image (default: 'Please describe this "
        "image in detail.').", show_default=False,
    )  # fmt: skip
    synonyms: str | None = setting(
        None, "Another synonym list (default: the reference's, as shipped).", show_default=False
    )  # data/chair_synonyms.txt
    responses: str | None = setting(None, shared=True)
    write_queries: str | None = setting(None, shared=True)
    responses_out: str | None = setting(None, shared=True)
    resume: bool = setting(False, shared=True)
    shard: str | None = setting(None, shared=True)
    generate_only: bool = setting(False, shared=True)
    details: str | None = setting(
        None, "Write each response's mentioned, hallucinated and ground-truth objects here (JSONL).",
        show_default=False,
    )  # fmt: skip
    output: str | None = setting(None, shared=True)
    allow_partial: bool = setting(False, shared=True)  # with --image-ids
    quiet: bool = setting(False, shared=True)
    progress_every: float = setting(DEFAULT_EVERY, shared=True)

    def generation(self) -> RespondSettings:
        """The respond stage's settings of the --model pass."""
        return RespondSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                               top_p=self.top_p, seed=self.seed, batch_size=self.batch_size)  # fmt: skip


def _words(opts: ChairEvalSettings) -> CocoWords:
    if opts.synonyms is None:
        return CocoWords(default_synonyms())
    return CocoWords(read_synonyms(read_text_file(opts.synonyms, "synonym list")))


def _truth(opts: ChairEvalSettings, words: CocoWords) -> CocoTruth:
    captions = None if opts.no_captions else (opts.coco_captions or default_captions(opts.coco_annotations))
    return CocoTruth(opts.coco_annotations, captions, words)


def _check_outputs(opts: ChairEvalSettings) -> None:
    """No output is one of the files the run reads (io/outputs.py), before anything is written."""
    captions = opts.coco_captions or default_captions(opts.coco_annotations)
    written = [("-o", opts.output), ("--details", opts.details), ("--write-queries", opts.write_queries),
               ("--responses-out", opts.responses_out)]  # fmt: skip
    read = [("--coco-annotations", opts.coco_annotations), ("--coco-captions", captions),
            ("--image-ids", opts.image_ids), ("--prompts", opts.prompts), ("--synonyms", opts.synonyms),
            ("--responses", opts.responses)]  # fmt: skip
    check_outputs([(o, p) for o, p in written if p], [(o, p) for o, p in read if p])


def _queries(opts: ChairEvalSettings, truth: CocoTruth) -> list[dict[str, Any]]:
    """The description queries of --image-ids (default: every image of the annotations)."""
    images = read_image_ids(opts.image_ids) if opts.image_ids else [(i, None) for i in sorted(truth.images)]
    unknown = truth.unknown(i for i, _ in images)
    if unknown:
        raise InputError(
            f"{len(unknown):,} image id(s) of --image-ids are not in {opts.coco_annotations} "
            f"(first: {unknown[0]})"
        )
    return query_records(images, truth.images, opts.image_root, read_prompts(opts.prompts))


def run_eval(opts: ChairEvalSettings) -> dict[str, Any] | None:
    run = model_pass(opts, opts.generation())
    if opts.coco_captions and opts.no_captions:
        raise UsageError("--coco-captions and --no-captions exclude each other")
    _check_outputs(opts)
    truth = _truth(opts, _words(opts))
    queries = _queries(opts, truth) if opts.write_queries is not None or run is not None else []
    if opts.write_queries is not None:
        write_query_file("eval-chair", opts.write_queries, queries, opts.quiet)
        return None
    if run is not None:
        responses = answer_queries("eval-chair", queries, run)
        if answered_only("eval-chair", run, opts.generate_only, opts.quiet):
            return None
    else:
        responses = list(read_jsonl(opts.responses))
    wanted = [i for i, _ in read_image_ids(opts.image_ids)] if opts.image_ids else None
    if wanted is not None:  # only the listed images are scored; each should have its description
        listed = set(wanted)
        responses = [r for n, r in enumerate(responses, 1) if image_id_of(r, f"response {n}") in listed]
    details: list[dict[str, Any]] | None = [] if opts.details else None
    result = score_responses(truth, responses, details)
    if wanted is not None:
        seen = {image_id_of(r, "") for r in responses}
        missing = [i for i in wanted if i not in seen]
        result["responses"] = {"scored": len(responses), "expected": len(wanted), "missing": len(missing)}
        result["complete"] = not missing
    result["ground_truth"] = "instances" if opts.no_captions else "instances+captions"
    if run is not None:
        result["model"] = run.model
    if details is not None:
        with JsonlWriter(opts.details) as writer:
            writer.write_all(details)
    write_json(result, opts.output)
    if not opts.quiet:
        say(format_table(result))
    if result.get("complete") is False and not opts.allow_partial:
        counts = result["responses"]
        raise InputError(
            f"{counts['missing']:,} of the {counts['expected']:,} images of --image-ids have no description, "
            "so the figures cover a subset (--allow-partial to accept them)"
        )
    return result

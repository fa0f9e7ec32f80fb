"""`eval-chair` end to end: export the description queries, answer them (the respond stage, optional),
score them against COCO, report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clipdpo_cli.eval.answer import ModelPass, answer_queries, check_pass_options
from clipdpo_cli.eval.chair.coco import CocoTruth, default_captions
from clipdpo_cli.eval.chair.evaluate import format_table, image_id_of, score_responses
from clipdpo_cli.eval.chair.queries import query_records, read_image_ids, read_prompts
from clipdpo_cli.eval.chair.words import CocoWords, default_synonyms, read_synonyms
from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import JsonlWriter, read_jsonl, write_json
from clipdpo_cli.io.log import say
from clipdpo_cli.io.outputs import check_outputs
from clipdpo_cli.io.shard import Shard
from clipdpo_cli.io.textfiles import read_text_file


@dataclass
class ChairEvalSettings:
    coco_annotations: str  # instances_val2014.json
    coco_captions: str | None = None  # default: captions_*.json beside it
    no_captions: bool = False  # ground truth from the instance annotations only
    image_root: str | None = None
    image_ids: str | None = None
    prompts: str | None = None
    synonyms: str | None = None  # another synonym list (default: the reference's, data/chair_synonyms.txt)
    responses: str | None = None
    write_queries: str | None = None
    model_pass: ModelPass | None = None
    generate_only: bool = False
    details: str | None = None
    output: str | None = None
    allow_partial: bool = False
    quiet: bool = False


def _words(opts: ChairEvalSettings) -> CocoWords:
    if opts.synonyms is None:
        return CocoWords(default_synonyms())
    return CocoWords(read_synonyms(read_text_file(opts.synonyms, "synonym list")))


def _truth(opts: ChairEvalSettings, words: CocoWords) -> CocoTruth:
    captions = None if opts.no_captions else (opts.coco_captions or default_captions(opts.coco_annotations))
    return CocoTruth(opts.coco_annotations, captions, words)


def _check_outputs(opts: ChairEvalSettings) -> None:
    """No output is one of the files the run reads (io/outputs.py), before anything is written."""
    run = opts.model_pass
    captions = opts.coco_captions or default_captions(opts.coco_annotations)
    written = [("-o", opts.output), ("--details", opts.details), ("--write-queries", opts.write_queries),
               ("--responses-out", run and run.responses_out)]  # fmt: skip
    read = [("--coco-annotations", opts.coco_annotations), ("--coco-captions", captions),
            ("--image-ids", opts.image_ids), ("--prompts", opts.prompts), ("--synonyms", opts.synonyms),
            ("--responses", opts.responses)]  # fmt: skip
    check_outputs([(o, p) for o, p in written if p], [(o, p) for o, p in read if p])


def run_eval(opts: ChairEvalSettings) -> dict[str, Any] | None:
    run = opts.model_pass
    _check_outputs(opts)
    check_pass_options(
        run and run.model,
        opts.responses,
        run and run.responses_out,
        bool(run and run.resume),
        run and run.shard,
        opts.write_queries,
    )
    words = _words(opts)
    truth = _truth(opts, words)
    queries: list[dict[str, Any]] = []
    if opts.write_queries is not None or run is not None:
        images = (
            read_image_ids(opts.image_ids) if opts.image_ids else [(i, None) for i in sorted(truth.images)]
        )
        unknown = truth.unknown(i for i, _ in images)
        if unknown:
            raise InputError(
                f"{len(unknown):,} image id(s) of --image-ids are not in {opts.coco_annotations} "
                f"(first: {unknown[0]})"
            )
        queries = query_records(images, truth.images, opts.image_root, read_prompts(opts.prompts))
    if opts.write_queries is not None:
        with JsonlWriter(opts.write_queries) as writer:
            writer.write_all(queries)
        if not opts.quiet:
            say(
                f"clipdpo eval-chair: {len(queries):,} queries written; answer them with `clipdpo respond "
                "FILE -m MODEL`, score the answers with --responses"
            )
        return None
    if run is not None:
        responses = answer_queries("eval-chair", queries, run)
        if opts.generate_only or not Shard.parse(run.shard).is_whole:
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

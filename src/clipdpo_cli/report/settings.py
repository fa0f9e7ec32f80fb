"""`clipdpo report`'s settings: what it reads and how it draws; each field is also one of its options."""

from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.values import optional_float

THRESHOLD_KINDS = ("caption", "question", "answer")
THRESHOLD_OPTIONS = {
    "caption": "--min-caption-score",
    "question": "--min-question-score",
    "answer": "--min-answer-score",
}
INPUTS = ("scored", "rejects", "pairs", "train", "amber", "zeroshot", "pope", "chair")
_LABELLED = (
    " [LABEL=]FILE, repeatable (LABEL names it in the figures; default its model, else the file name)."
)


def _files(help: str, metavar: str = "FILE") -> Any:
    """A repeatable input option: a list of files, empty when not given."""
    return setting(
        default_factory=list, help=help, cli_type=list[str] | None, cli_default=None,
        parse=lambda paths: list(paths or ()), metavar=metavar, show_default=False,
    )  # fmt: skip


def _threshold(help: str) -> Any:
    """A threshold to draw, as typed (None: not given); ReportSettings.thresholds parses it."""
    return setting(None, help, cli_type=str | None, show_default=False)


@dataclass
class ReportSettings:
    scored: list[str] = _files(
        "Scored (and categorized) records, JSONL: score histograms per category. Repeatable."
    )
    rejects: list[str] = _files(
        "A --rejects file of filter, pair or ask: records dropped per rule, and the score thresholds the "
        "reasons record. Repeatable."
    )
    pairs: list[str] = _files(
        "Pairs JSONL (clipdpo pair): margins, lengths, pairs per image, example cards. Repeatable (shards)."
    )
    train: list[str] = _files(
        "A train --output-dir (or its train_summary.json / trainer_state.json): loss and reward curves. "
        "[LABEL=]PATH, repeatable to compare runs.",
        "[LABEL=]PATH",
    )
    amber: list[str] = _files("An eval-amber result (JSON)." + _LABELLED, "[LABEL=]FILE")
    zeroshot: list[str] = _files("An eval-zeroshot output (JSONL)." + _LABELLED, "[LABEL=]FILE")
    pope: list[str] = _files("An eval-pope result (JSON)." + _LABELLED, "[LABEL=]FILE")
    chair: list[str] = _files("An eval-chair result (JSON)." + _LABELLED, "[LABEL=]FILE")
    compare: bool = setting(
        False, "The checkpoints x benchmarks table and figure of every --amber, --pope, --chair and "
        "--zeroshot result, joined by label (always drawn with --pope or --chair).", flags=("--compare",),
    )  # fmt: skip
    output: str = setting("report.html", "The HTML file to write.", flags=("--output", "-o"), metavar="FILE")
    png_dir: str | None = setting(
        None, "Also write each figure as a PNG file into this folder.", metavar="DIR", show_default=False
    )
    min_caption_score: str | None = _threshold(
        "Caption threshold to draw ('none': none); default: what the rejects record."
    )
    min_question_score: str | None = _threshold(
        "Question threshold to draw; default: what the rejects record."
    )
    min_answer_score: str | None = _threshold(
        "QA answer threshold to draw (pair's); default: what the rejects record."
    )
    score_field: str = setting("clip_score", shared=True)
    question_score_field: str = setting("question_score", "Field holding the question score.")
    bin_width: float | None = setting(
        None, "Score histogram bin width in points, a multiple of 0.05 (default: fits the range).",
        show_default=False,
    )  # fmt: skip
    examples: int = setting(6, "Example pairs shown with their images.", min=0)
    image_root: str | None = setting(None, shared=True)
    title: str = setting("clipdpo report", "The page's title.")
    quiet: bool = setting(False, shared=True)

    def __post_init__(self) -> None:
        """The thresholds and --bin-width checked now (a UsageError before any file is read)."""
        self.thresholds  # noqa: B018 - parses them
        width = self.bin_width
        if width is not None and (width <= 0 or abs(round(width * 20) - width * 20) > 1e-9):
            raise UsageError(f"--bin-width must be a positive multiple of 0.05, got {width:g}")

    @property
    def thresholds(self) -> dict[str, float | None]:
        """Kind ("caption", ...) -> the threshold given ('none': None, none drawn); absent: not given."""
        given = {kind: getattr(self, f"min_{kind}_score") for kind in THRESHOLD_KINDS}
        return {
            kind: optional_float(str(value), THRESHOLD_OPTIONS[kind])
            for kind, value in given.items()
            if value is not None
        }

    @property
    def inputs(self) -> list[str]:
        """Every input argument given, in the order of INPUTS."""
        return [arg for kind in INPUTS for arg in getattr(self, kind)]

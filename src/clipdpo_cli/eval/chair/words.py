"""The MSCOCO object words of a caption, as CHAIR's reference finds them (LisaAnne/Hallucination
utils/chair.py, `CHAIR.caption_to_words`).

The reference lower-cases the caption, tokenizes it with `nltk.word_tokenize`, singularizes every token
with `pattern.en.singularize`, joins two-word objects ('hot dog', 'baby bird' -> 'bird', 'toilet seat' ->
'toilet', 'wine glas' -> 'wine glass': pattern makes 'glass' 'glas'), drops 'seat' from a caption that
says 'toilet', and keeps the words on the synonym list (data/chair_synonyms.txt), each with its COCO
category (its "node word").

Here, with no NLTK data or Pattern at run time:
- `singularize` is pattern's algorithm over its own tables (data/chair_singular.json, which names the pattern
  commit): the same word for every input, quirks included ('glass' -> 'glas', 'bus' -> 'bus', 'people' ->
  'person').
- `tokenize` stands in for nltk.word_tokenize (Punkt sentences, then the Treebank rules): runs of letters
  and digits with inner hyphens ('hot-dog' stays one token, as in NLTK), clitics split off ("dog's" ->
  'dog', "'s"), every other non-space character alone. It differs from NLTK only on tokens that cannot be
  a COCO word (numbers such as '3.5', abbreviations such as 'u.s.', URLs), so the objects found are the same.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources

_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*|'[^\W_]+|\S")

# the reference's hard-coded two-word objects and qualifiers (utils/chair.py, CHAIR.__init__)
COCO_DOUBLE_WORDS = (
    "motor bike",
    "motor cycle",
    "air plane",
    "traffic light",
    "street light",
    "traffic signal",
    "stop light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "suit case",
    "sports ball",
    "baseball bat",
    "baseball glove",
    "tennis racket",
    "wine glass",
    "hot dog",
    "cell phone",
    "mobile phone",
    "teddy bear",
    "hair drier",
    "potted plant",
    "bow tie",
    "laptop computer",
    "stove top oven",
    "home plate",
    "train track",
)
ANIMAL_WORDS = (
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "animal",
    "cub",
)
VEHICLE_WORDS = ("jet", "train")


def tokenize(text: str) -> list[str]:
    """Word tokens of lower-cased text (nltk.word_tokenize's split for every word that can be an object)."""
    return _TOKEN.findall(text)


@cache
def _tables() -> dict:
    return json.loads(resources.files("clipdpo_cli.data").joinpath("chair_singular.json").read_text("utf-8"))


@cache
def _rules() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern), replacement) for pattern, replacement in _tables()["rules"]]


@lru_cache(maxsize=65536)
def singularize(word: str) -> str:
    """pattern.en.singularize(word) (pattern 3.6, nouns, no custom words)."""
    tables = _tables()
    if "-" in word:  # compound words: mothers-in-law -> mother-in-law
        parts = word.split("-")
        if len(parts) > 1 and parts[1] in tables["plural_prepositions"]:
            return singularize(parts[0]) + "-" + "-".join(parts[1:])
    if word.endswith("'"):  # dogs' -> dog's
        return singularize(word[:-1]) + "'s"
    w = word.lower()
    if any(x.endswith(w) for x in tables["uninflected"]) or any(x.endswith(w) for x in tables["uncountable"]):
        return word
    if any(w.endswith(x + "s") for x in tables["ie"]):
        return w
    for plural, singular in tables["irregular"].items():
        if w.endswith(plural):
            return re.sub("(?i)" + plural + "$", singular, word)
    for suffix, inflection in _rules():
        match = suffix.search(word)
        if match:
            for k, group in enumerate(match.groups()):
                if group is None:
                    inflection = inflection.replace("\\" + str(k + 1), "")
            return suffix.sub(inflection, word)
    return word


def read_synonyms(text: str) -> list[list[str]]:
    """The synonym list's lines as the reference splits them (strip, then ', '); '#' lines are notes."""
    return [
        line.strip().split(", ") for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]


def default_synonyms() -> list[list[str]]:
    return read_synonyms(
        resources.files("clipdpo_cli.data").joinpath("chair_synonyms.txt").read_text("utf-8")
    )


@dataclass
class CocoWords:
    """The reference's vocabulary: every synonym, its COCO category, and the two-word rules."""

    synonyms: list[list[str]] = field(default_factory=default_synonyms)

    def __post_init__(self) -> None:
        self.objects: set[str] = set()
        self.node: dict[str, str] = {}  # synonym -> its line's first word (the COCO category)
        for line in self.synonyms:
            self.objects.update(line)
            for word in line:
                self.node[word] = line[0]
        double = {w: w for w in COCO_DOUBLE_WORDS}
        for animal in ANIMAL_WORDS:
            double[f"baby {animal}"] = animal
            double[f"adult {animal}"] = animal
        for vehicle in VEHICLE_WORDS:
            double[f"passenger {vehicle}"] = vehicle
        double.update({"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"})
        self.double_words = double

    def category(self, name: str) -> str:
        """The node word of a COCO category name (instances' 'categories')."""
        return self.node[name]

    def caption_words(self, caption: str) -> tuple[list[str], list[str]]:
        """(object words, their node words) of a caption, in order, repeats kept."""
        words = [singularize(w) for w in tokenize(caption.lower())]
        merged: list[str] = []
        i = 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            if pair in self.double_words:
                merged.append(self.double_words[pair])
                i += 2
            else:
                merged.append(words[i])
                i += 1
        if "toilet" in merged and "seat" in merged:  # 'the seat of the toilet' is not a chair
            merged = [w for w in merged if w != "seat"]
        found = [w for w in merged if w in self.objects]
        return found, [self.node[w] for w in found]

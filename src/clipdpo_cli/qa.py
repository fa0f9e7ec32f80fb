"""The paper's question-answer check text (Sec. 4.2, Fig. 6): a question becomes a description by regex
rules and the positive answer is appended; CLIP then scores that synthetic caption against the image.

    >>> qa_to_caption("What color is the car?", "red")
    'The car is red.'
    >>> qa_to_caption("What is the woman holding?", "An umbrella")
    'The woman holding an umbrella.'
    >>> qa_to_caption("How many dogs are in the picture?", "three")
    'Three dogs in the picture.'
"""

from __future__ import annotations

import re

_PREPOSITIONS = {
    "on", "in", "under", "behind", "near", "next", "at", "above", "below", "beside", "inside", "between",
    "by", "over", "in front", "around", "along", "across", "against",
}  # fmt: skip
_ATTRIBUTE = r"(?:colou?r|shape|size|material|pattern|kind|type|brand|breed|sort|style)(?:\s+of\s+\w+)?"
_BE = r"(?:is|are|was|were)"

_RULES: list[tuple[re.Pattern[str], str]] = [
    # "What color is the car" -> "the car is {a}"
    (re.compile(rf"^(?:what|which)\s+{_ATTRIBUTE}\s+(?P<be>{_BE})\s+(?P<rest>.+)$", re.I), "{rest} {be} {a}"),
    # "How many dogs are in the picture" -> "{a} dogs in the picture"
    (
        re.compile(rf"^how\s+many\s+(?P<noun>.+?)\s+{_BE}(?:\s+there\b)?\s*(?P<rest>.*)$", re.I),
        "{a} {noun} {rest}",
    ),
    (
        re.compile(r"^how\s+many\s+(?P<noun>.+?)\s+(?:can|do|does)\s+you\s+see(?P<rest>.*)$", re.I),
        "{a} {noun}{rest}",
    ),
    # "Where is the cat" -> "the cat {a}"
    (re.compile(rf"^where\s+{_BE}\s+(?P<rest>.+)$", re.I), "{rest} {a}"),
    # "Who is standing near the car" / "What is on the table" -> "{a} standing near the car"
    (
        re.compile(rf"^(?:what|who)\s+{_BE}\s+(?P<rest>(?:\w+ing|{'|'.join(_PREPOSITIONS)})\b.*)$", re.I),
        "{a} {rest}",
    ),
    # "What is the woman holding" -> "the woman holding {a}"
    (re.compile(rf"^(?:what|who|which)\s+{_BE}\s+(?P<rest>.+)$", re.I), "{rest} {a}"),
    # "What does the sign say" -> "the sign says {a}" is beyond regexes; keep the subject and the answer
    (re.compile(r"^(?:what|which|who)\s+(?:does|do|did)\s+(?P<rest>.+?)\s+\w+$", re.I), "{rest} {a}"),
    # "Is the man smiling" -> "the man smiling {a}"
    (re.compile(r"^(?:is|are|was|were|does|do|did|can|could|has|have)\s+(?P<rest>.+)$", re.I), "{rest} {a}"),
]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip("?.!").strip()


def question_to_description(question: str) -> str:
    """The description part alone (the question with its interrogative head removed)."""
    return qa_to_caption(question, "").rstrip(".")


def qa_to_caption(question: str, answer: str) -> str:
    """A synthetic caption: the question rewritten as a description, with the positive answer put in."""
    q, a = _clean(question), _clean(answer)
    if a and a[0].isupper() and not a[:2].isupper():
        a = a[0].lower() + a[1:]
    text = f"{q} {a}"
    yes_no = a.lower() in ("yes", "no")
    for pattern, template in _RULES:
        match = pattern.match(q)
        if match:
            parts = match.groupdict()
            if yes_no and "rest" in parts and template.endswith("{rest} {a}"):
                text = parts["rest"] if a.lower() == "yes" else f"no {parts['rest']}"
            else:
                text = template.format(a=a, **parts)
            break
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."

"""`--where FIELD OP VALUE` conditions for ad-hoc filtering experiments."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from clipdpo_cli.io.errors import UsageError

_MISSING = object()
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "in": lambda value, options: value in options,
    "contains": lambda value, part: part in value,
}
_PATTERN = re.compile(
    r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>|\s+in\s+|\s+contains\s+|\s+exists\b)\s*(.*)$"
)


def _lookup(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


@dataclass(frozen=True)
class Condition:
    """One condition; `field` may be dotted (`meta.source`). VALUE is JSON when it parses, else a string."""

    text: str
    path: tuple[str, ...]
    op: str
    value: Any = None

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _PATTERN.match(text)
        if not match:
            raise UsageError(
                f"--where '{text}': expected FIELD OP VALUE with OP one of == != < <= > >= in contains exists"
            )
        field, op, raw = match.group(1), match.group(2).strip(), match.group(3).strip()
        if op == "exists":
            return cls(text, tuple(field.split(".")), op)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw
        if op == "in" and not isinstance(value, list):
            raise UsageError(f"--where '{text}': 'in' needs a JSON list, e.g. [\"people\", \"scenes\"]")
        return cls(text, tuple(field.split(".")), op, value)

    def holds(self, record: dict[str, Any]) -> bool:
        """True when the record satisfies the condition; a missing or incomparable field never does."""
        value = _lookup(record, self.path)
        if self.op == "exists":
            return value is not _MISSING
        if value is _MISSING:
            return False
        try:
            return bool(_OPS[self.op](value, self.value))
        except TypeError:
            return False

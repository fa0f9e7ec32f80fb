"""A minimal level-5 MAT file WRITER for tests only: builds fake Stanford Cars / Flowers-102 .mat files.

It follows the documented format (128-byte header, tagged data elements padded to 8 bytes, miCOMPRESSED
zlib streams, small data elements for names of 4 bytes or less), independently of the reader under test.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

MI_INT8, MI_UINT8, MI_INT32, MI_UINT16, MI_UINT32, MI_DOUBLE = 1, 2, 5, 4, 6, 9
MI_MATRIX, MI_COMPRESSED = 14, 15
MX_CELL, MX_STRUCT, MX_CHAR, MX_DOUBLE = 1, 2, 4, 6


def _element(dtype: int, payload: bytes) -> bytes:
    if 0 < len(payload) <= 4 and dtype != MI_MATRIX:  # small data element format
        return struct.pack("<HH", dtype, len(payload)) + payload.ljust(4, b"\0")
    return struct.pack("<II", dtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _header(flags_class: int, dims: list[int], name: str) -> bytes:
    return (
        _element(MI_UINT32, struct.pack("<II", flags_class, 0))
        + _element(MI_INT32, struct.pack(f"<{len(dims)}i", *dims))
        + (_element(MI_INT8, name.encode()) if name else struct.pack("<II", MI_INT8, 0))
    )


def _matrix(name: str, value: Any, small_ints: bool) -> bytes:
    if isinstance(value, str):
        data = _element(MI_UINT16, value.encode("utf-16-le"))
        return _header(MX_CHAR, [1, len(value)], name) + data
    if isinstance(value, (int, float)):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        fields = list(value[0])
        body = _header(MX_STRUCT, [1, len(value)], name)
        body += _element(MI_INT32, struct.pack("<i", 32))
        body += _element(MI_INT8, b"".join(f.encode().ljust(32, b"\0") for f in fields))
        for item in value:
            for f in fields:
                body += _element(MI_MATRIX, _matrix("", item[f], small_ints))
        return body
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        body = _header(MX_CELL, [1, len(value)], name)
        for item in value:
            body += _element(MI_MATRIX, _matrix("", item, small_ints))
        return body
    numbers = list(value)
    if small_ints and all(float(v).is_integer() and 0 <= v < 256 for v in numbers):
        data = _element(MI_UINT8, bytes(int(v) for v in numbers))  # as MATLAB stores small whole doubles
    else:
        data = _element(MI_DOUBLE, struct.pack(f"<{len(numbers)}d", *numbers))
    return _header(MX_DOUBLE, [1, len(numbers)], name) + data


def write_mat(path: str, variables: dict[str, Any], compress: bool = True, small_ints: bool = False) -> None:
    """Write `variables` (str, numbers, list of str -> cell, list of dicts -> struct array) to `path`."""
    out = b"MATLAB 5.0 MAT-file, clipdpo test fake".ljust(116, b" ") + b"\0" * 8
    out += struct.pack("<H", 0x0100) + b"IM"
    for name, value in variables.items():
        element = _element(MI_MATRIX, _matrix(name, value, small_ints))
        if compress:
            packed = zlib.compress(element)
            element = struct.pack("<II", MI_COMPRESSED, len(packed)) + packed
        out += element
    with open(path, "wb") as fh:
        fh.write(out)

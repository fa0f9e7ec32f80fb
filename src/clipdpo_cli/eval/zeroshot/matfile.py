"""A small reader for MATLAB level-5 MAT files (the .mat annotation files of Stanford Cars and Flowers-102).

torchvision reads these with scipy.io.loadmat; scipy is not a dependency here, and these files only hold
numeric vectors, strings, cell arrays of strings and struct arrays, so a reader of the documented v5 format
(MathWorks "MAT-File Format", level 5) is small. Values come back as plain Python objects, not squeezed:

- numeric and logical arrays: a flat list of numbers in MATLAB's column-major order;
- char arrays: a string (one row) or a list of strings (one per row);
- cell arrays: a flat list of values (column-major);
- struct arrays: a list of dicts, one per element (column-major).

MAT 7.3 files are HDF5 and are not read (a clear MatFormatError says so).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

# Data element types (the tag's first field).
MI_INT8, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32 = 1, 2, 3, 4, 5, 6
MI_SINGLE, MI_DOUBLE, MI_INT64, MI_UINT64 = 7, 9, 12, 13
MI_MATRIX, MI_COMPRESSED, MI_UTF8, MI_UTF16, MI_UTF32 = 14, 15, 16, 17, 18

_NUMERIC_FORMATS = {
    MI_INT8: "b", MI_UINT8: "B", MI_INT16: "h", MI_UINT16: "H", MI_INT32: "i", MI_UINT32: "I",
    MI_SINGLE: "f", MI_DOUBLE: "d", MI_INT64: "q", MI_UINT64: "Q",
}  # fmt: skip

# Array classes (low byte of the array flags).
MX_CELL, MX_STRUCT, MX_OBJECT, MX_CHAR, MX_SPARSE = 1, 2, 3, 4, 5


class MatFormatError(ValueError):
    """The file is not a level-5 MAT file this reader understands."""


def load_mat(path: str) -> dict[str, Any]:
    """The named variables of a level-5 MAT file, as plain Python values (see the module docstring)."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_mat(data, path)


def parse_mat(data: bytes, name: str = "<bytes>") -> dict[str, Any]:
    if len(data) < 128:
        raise MatFormatError(f"{name}: too short to be a MAT file")
    if data[:8] == b"\x89HDF\r\n\x1a\n" or data[512:520] == b"\x89HDF\r\n\x1a\n":
        raise MatFormatError(f"{name}: MAT 7.3 (HDF5) files are not supported; save it with -v7 or -v6")
    marker = data[126:128]
    if marker == b"IM":
        endian = "<"
    elif marker == b"MI":
        endian = ">"
    else:
        raise MatFormatError(f"{name}: not a level-5 MAT file (no endian indicator)")
    reader = _Reader(endian, name)
    variables: dict[str, Any] = {}
    for dtype, body in reader.elements(data, 128):
        if dtype == MI_COMPRESSED:
            try:
                inner = zlib.decompress(body)
            except zlib.error as exc:
                raise MatFormatError(f"{name}: corrupt compressed element: {exc}") from None
            for inner_type, inner_body in reader.elements(inner, 0):
                if inner_type == MI_MATRIX:
                    var_name, value = reader.matrix(inner_body)
                    variables[var_name] = value
        elif dtype == MI_MATRIX:
            var_name, value = reader.matrix(body)
            variables[var_name] = value
    return variables


class _Reader:
    def __init__(self, endian: str, name: str) -> None:
        self.endian = endian
        self.name = name

    def _fail(self, what: str) -> MatFormatError:
        return MatFormatError(f"{self.name}: {what}")

    def elements(self, data: bytes, pos: int) -> Any:
        """(type, body bytes) of each data element from `pos` to the end of `data`."""
        end = len(data)
        while pos + 8 <= end:
            dtype, _size, body, pos = self.element(data, pos)
            yield dtype, body

    def element(self, data: bytes, pos: int) -> tuple[int, int, bytes, int]:
        """One data element at `pos`: (type, size, body, position after its padding)."""
        (first,) = struct.unpack_from(self.endian + "I", data, pos)
        if first >> 16:  # small data element: size and type packed into 4 bytes, data in the next 4
            dtype, nbytes = first & 0xFFFF, first >> 16
            if nbytes > 4:
                raise self._fail("bad small data element")
            return dtype, nbytes, data[pos + 4 : pos + 4 + nbytes], pos + 8
        (nbytes,) = struct.unpack_from(self.endian + "I", data, pos + 4)
        start = pos + 8
        if start + nbytes > len(data):
            raise self._fail("truncated data element")
        body = data[start : start + nbytes]
        # Compressed elements are not padded; all others end on an 8-byte boundary.
        step = nbytes if first == MI_COMPRESSED else (nbytes + 7) // 8 * 8
        return first, nbytes, body, start + step

    def numbers(self, dtype: int, body: bytes) -> list[Any]:
        fmt = _NUMERIC_FORMATS.get(dtype)
        if fmt is None:
            raise self._fail(f"unsupported numeric data type {dtype}")
        count = len(body) // struct.calcsize(fmt)
        return list(struct.unpack(f"{self.endian}{count}{fmt}", body[: count * struct.calcsize(fmt)]))

    def text(self, dtype: int, body: bytes) -> str:
        if dtype in (MI_UTF8, MI_INT8, MI_UINT8):
            return body.decode("utf-8", errors="replace")
        if dtype in (MI_UTF16, MI_UINT16, MI_INT16):
            return body.decode("utf-16-le" if self.endian == "<" else "utf-16-be", errors="replace")
        if dtype == MI_UTF32:
            return body.decode("utf-32-le" if self.endian == "<" else "utf-32-be", errors="replace")
        raise self._fail(f"unsupported character data type {dtype}")

    def matrix(self, body: bytes) -> tuple[str, Any]:
        """(name, value) of one miMATRIX element body."""
        if not body:
            return "", []
        pos = 0

        def take() -> tuple[int, bytes]:
            nonlocal pos
            dtype, _n, sub, pos = self.element(body, pos)
            return dtype, sub

        _t, flags_raw = take()
        flags = self.numbers(MI_UINT32, flags_raw)
        mx_class = flags[0] & 0xFF
        complex_ = bool(flags[0] & 0x0800)
        dims_t, dims_raw = take()
        dims = [int(d) for d in self.numbers(dims_t, dims_raw)]
        _nt, name_raw = take()
        name = name_raw.decode("ascii", errors="replace")
        count = 1
        for d in dims:
            count *= d
        if mx_class == MX_CELL:
            cells = []
            for _ in range(count):
                sub_t, sub = take()
                if sub_t != MI_MATRIX:
                    raise self._fail("cell element is not a matrix")
                cells.append(self.matrix(sub)[1])
            return name, cells
        if mx_class == MX_STRUCT:
            _lt, len_raw = take()
            field_len = int(self.numbers(MI_INT32, len_raw)[0])
            _ft, names_raw = take()
            fields = [
                names_raw[i : i + field_len].split(b"\x00", 1)[0].decode("ascii", errors="replace")
                for i in range(0, len(names_raw), field_len)
            ] if field_len else []  # fmt: skip
            elements = []
            for _ in range(count):
                item = {}
                for field in fields:
                    sub_t, sub = take()
                    if sub_t != MI_MATRIX:
                        raise self._fail(f"struct field '{field}' is not a matrix")
                    item[field] = self.matrix(sub)[1]
                elements.append(item)
            return name, elements
        if mx_class in (MX_OBJECT, MX_SPARSE):
            raise self._fail(f"variable '{name}': objects and sparse arrays are not supported")
        if mx_class == MX_CHAR:
            if count == 0:
                return name, ""
            data_t, raw = take()
            chars = self.text(data_t, raw)
            rows = dims[0] if dims else 1
            if rows <= 1:
                return name, chars
            cols = len(chars) // rows  # column-major: row r is chars[r], chars[r + rows], ...
            return name, ["".join(chars[r + c * rows] for c in range(cols)) for r in range(rows)]
        if count == 0:
            return name, []
        data_t, raw = take()
        values = self.numbers(data_t, raw)
        if complex_:
            raise self._fail(f"variable '{name}': complex arrays are not supported")
        return name, values


def scalar(value: Any) -> Any:
    """The single element of a one-element list (as loadmat's squeeze_me would give), else the value."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value

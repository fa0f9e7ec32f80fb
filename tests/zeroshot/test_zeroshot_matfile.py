"""The MAT v5 reader against files from the test writer and against hand-assembled bytes."""

from __future__ import annotations

import struct
import zlib

import pytest

from clipdpo_cli.eval.zeroshot.matfile import MatFormatError, load_mat, parse_mat, scalar

from .zeroshot_matwriter import write_mat


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("small_ints", [True, False])
def test_round_trip_of_the_types_the_datasets_use(tmp_path, compress, small_ints):
    path = tmp_path / "x.mat"
    anns = [{"class": 3, "fname": "00001.jpg"}, {"class": 196, "fname": "b.jpg"}]
    write_mat(
        str(path),
        {
            "class_names": ["AM General Hummer", "Ünïcode car"],
            "labels": [1.0, 102.0, 5.0],
            "annotations": anns,
            "tstid": 7,
            "name": "hello",
        },
        compress=compress,
        small_ints=small_ints,
    )
    mat = load_mat(str(path))
    assert mat["class_names"] == ["AM General Hummer", "Ünïcode car"]
    assert mat["labels"] == [1, 102, 5]
    assert [(scalar(a["class"]), a["fname"]) for a in mat["annotations"]] == [
        (3, "00001.jpg"),
        (196, "b.jpg"),
    ]
    assert mat["tstid"] == [7] and scalar(mat["tstid"]) == 7
    assert mat["name"] == "hello"


def test_hand_assembled_bytes_big_endian_with_a_char_matrix():
    """A 2x3 char matrix 'abc'/'def' stored column-major, big-endian, name in a small data element."""

    def el(dtype, payload):
        return struct.pack(">II", dtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)

    flags = el(6, struct.pack(">II", 4, 0))  # mxCHAR_CLASS
    dims = el(5, struct.pack(">ii", 2, 3))
    name = struct.pack(">HH", 2, 1) + b"cm\0\0"  # small element (big-endian: size, then type miINT8)
    chars = el(4, "adbecf".encode("utf-16-be"))  # column-major
    matrix = el(14, flags + dims + name + chars)
    header = b"MATLAB 5.0".ljust(116) + b"\0" * 8 + struct.pack(">H", 0x0100) + b"MI"
    assert parse_mat(header + matrix) == {"cm": ["abc", "def"]}
    compressed = zlib.compress(matrix)
    assert parse_mat(header + struct.pack(">II", 15, len(compressed)) + compressed) == {"cm": ["abc", "def"]}


def test_rejects_non_mat_and_hdf5(tmp_path):
    with pytest.raises(MatFormatError, match="not a level-5 MAT file"):
        parse_mat(b"x" * 200)
    with pytest.raises(MatFormatError, match="HDF5"):
        parse_mat(b"\0" * 512 + b"\x89HDF\r\n\x1a\n" + b"\0" * 100)

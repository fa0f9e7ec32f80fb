"""Input paths that can be read only once: a pipe (`<(zcat a.jsonl.gz)`, /dev/stdin on a pipe), a named FIFO,
a terminal. Each is opened once; the first bytes that format sniffing looks at are kept, and the reader that
follows gets them back before the rest of the stream (io/sources/ and io/jsonl.py open every input path
through here)."""

from __future__ import annotations

import io
import os
import stat
from typing import IO

# One open stream per pipe (device, inode): the sniffing and the reading after it share it.
_OPEN: dict[tuple[int, int], _Replay] = {}


def is_stream(path: str) -> bool:
    """Whether `path` (not '-') names something that is not a file one can open twice: a pipe, a FIFO, a
    character device or a socket. A missing path is not one."""
    if path == "-":
        return False
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


class _Replay(io.RawIOBase):
    """A stream opened once whose first bytes, once looked at (`head`), are read again before the rest."""

    def __init__(self, path: str, key: tuple[int, int]) -> None:
        super().__init__()
        self.name = path
        self._key = key
        self._raw = open(path, "rb", buffering=0)  # a FIFO waits here for its writer
        self._head = b""
        self._pos = 0  # how much of the head has been read back

    def head(self, size: int) -> bytes:
        """Up to `size` first bytes (fewer at the end of the stream), kept for reading."""
        while len(self._head) < size and self._pos == 0:
            chunk = self._raw.read(size - len(self._head))
            if not chunk:
                break
            self._head += chunk
        return self._head[:size]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos < len(self._head):
            n = min(len(buffer), len(self._head) - self._pos)
            buffer[:n] = self._head[self._pos : self._pos + n]
            self._pos += n
            return n
        self._pos = max(self._pos, 1)  # reading has begun: head() reads no more
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self.closed:
            _OPEN.pop(self._key, None)
            self._raw.close()
        super().close()


def _replay(path: str) -> _Replay:
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    stream = _OPEN.get(key)
    if stream is None or stream.closed:
        stream = _OPEN[key] = _Replay(path, key)
    return stream


def stream_head(path: str, size: int = 512) -> bytes:
    """The first bytes of a once-readable path, opening it (and waiting for a FIFO's writer) if need be."""
    return _replay(path).head(size)


def open_stream(path: str) -> IO[bytes]:
    """A once-readable path as a buffered binary stream: the bytes already sniffed, then the rest."""
    return io.BufferedReader(_replay(path), buffer_size=1 << 16)

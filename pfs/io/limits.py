"""Size limits on decompressed input, against gzip bombs.

A 50 kB gzip file can expand to gigabytes; the compressed size says nothing. Every gzip stream pfs
reads goes through :func:`open_gzip_limited` (streaming) or :func:`read_gzip_limited` (whole file),
which count the bytes that come out and stop with an :class:`~pfs.exceptions.ExportError` naming the
file and the limit as soon as it is passed, before the memory is spent.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import IO

from pfs.exceptions import ExportError

#: Decompressed bytes pfs reads out of one gzip file (tables are streamed, but a bomb still fills the disk
#: through the staged rows and costs the time to decompress it).
MAX_DECOMPRESSED_BYTES = 4 * 1024**3
_CHUNK = 1024 * 1024


class _LimitedReader(io.RawIOBase):
    """A binary stream over ``gzip.open`` that raises once more than ``max_bytes`` came out."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path = path
        self._max = int(max_bytes)
        self._seen = 0
        try:
            self._gz = gzip.open(path, "rb")
        except OSError as err:
            raise ExportError(f"{path}: cannot open gzip file: {err}") from err

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # Ask for at most one byte past the limit, so a bomb is never decompressed further than that.
        want = min(len(buffer), self._max - self._seen + 1)
        try:
            data = self._gz.read(want)
        except (OSError, EOFError, zlib.error) as err:
            raise ExportError(f"{self._path}: corrupt gzip file: {err}") from err
        self._seen += len(data)
        if self._seen > self._max:
            raise ExportError(
                f"{self._path}: decompresses to more than {self._max} bytes (the limit against gzip bombs); "
                "decompress it yourself if it is genuine"
            )
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._gz.close()
        super().close()


def open_gzip_limited(path: Path | str, max_bytes: int | None = None) -> IO[bytes]:
    """A buffered binary stream of the decompressed content of ``path``, limited to ``max_bytes``.

    Wrap it in :class:`io.TextIOWrapper` to read text line by line.

    Raises:
        ExportError: the file is not gzip, is corrupt, or decompresses past the limit (on read).
    """
    limit = MAX_DECOMPRESSED_BYTES if max_bytes is None else max_bytes
    return io.BufferedReader(_LimitedReader(Path(path), limit), buffer_size=_CHUNK)


def read_gzip_limited(path: Path | str, max_bytes: int | None = None) -> bytes:
    """The whole decompressed content of ``path``; raises :class:`ExportError` past ``max_bytes``."""
    with open_gzip_limited(path, max_bytes) as fh:
        return fh.read()


def open_text_gzip_limited(path: Path | str, max_bytes: int | None = None, *, encoding: str = "utf-8",
                           errors: str = "replace") -> IO[str]:
    """:func:`open_gzip_limited` as text, for line-by-line readers such as NDJSON."""
    return io.TextIOWrapper(open_gzip_limited(path, max_bytes), encoding=encoding, errors=errors)

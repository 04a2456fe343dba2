"""One input file of the read stage, parsed in chunks: decompression, Parquet batches, and
what happens when a file breaks off.

JSON lines are decompressed by extension (``.gz`` through ISA-L, ``.bz2``, ``.zst`` and
``.lz4`` through Arrow) and handed on as raw bytes, so that invalid UTF-8 is caught per line
by operators/io/records.py instead of failing the file. A file that cannot be read to its
end (a compressed stream cut short or damaged, a Parquet file without its footer or with a
damaged page) is corrupt: with ``input.on_corrupt_file: skip`` its records before the break
are kept and the file gets one ``read:corrupt_file`` rejected row, in the chunk of the first
line (or row) not read, so it is counted with the other drop reasons and rewritten in the
same part file by a retried task; with ``fail`` :class:`CorruptInputError` stops the run. A
failure of the source itself (the network, a permission, a missing file) is neither: it is
raised as it came, with a note naming the file.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import itertools
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip, isal_zlib

from jobs.parquet_columns import PassThrough, conform_columns
from jobs.store import S3Options, filesystem_for
from operators.io.jsonl_block import parse_jsonl_batch
from operators.io.records import JSONL_SCHEMA, FieldMapping, corrupt_file_row, normalize_table

log = logging.getLogger(__name__)

OnCorrupt = Literal["skip", "fail"]

_ARROW_CODECS = {".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
"""Compressed JSON lines that Arrow decodes, by extension (``.gz`` goes through ISA-L)."""

_PYTHON_DECODERS: dict[str, Callable[[Any], Any]] = {
    ".gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), ".bz2": lambda f: bz2.BZ2File(f, mode="rb")}
_READ_BUFFER = 1 << 20
_SALVAGE_READ = 8 << 10  # reads of the second pass over a broken file

# What a decoder raises on bad input: EOFError (gzip cut short), OSError (a bad gzip header
# or checksum; bz2; Arrow's codecs; a damaged Parquet page), isal_zlib.error and zlib.error
# (a damaged deflate stream), ArrowInvalid (no Parquet footer). The source's own failures
# are told apart by _Source, never by type.
_DECODE_ERRORS = (EOFError, OSError, isal_zlib.error, zlib.error, pa.ArrowInvalid)


class CorruptInputError(OSError):
    """An input file that cannot be read to its end, with ``input.on_corrupt_file: fail``.

    Its own message names the file, where reading stopped and the decoder's error: ``tamis
    run`` prints only the innermost error of a chain, so this one is raised unchained.
    """


@dataclass
class _Break:
    """Where reading an input file stopped early, and why (None: it did not)."""

    error: BaseException | None = None


def parse_input(uri: str, fmt: str, fields: FieldMapping, s3: S3Options, *, part_rows: int, batch_rows: int,
                on_corrupt: OnCorrupt, columns: PassThrough | None = None) -> Iterator[tuple[int, tuple[pa.Table, pa.Table]]]:
    """Yield (chunk number, (documents, rejected rows)) for one input file; a chunk is
    ``part_rows`` input rows. A corrupt file ends with its ``read:corrupt_file`` row
    (``skip``) or raises :class:`CorruptInputError` once its records before the break are
    yielded (``fail``). Parquet columns other than the mapped ones are conformed to
    ``columns``, those of the run's input files (jobs/parquet_columns.py)."""
    fs, path = filesystem_for(uri, s3)
    broken = _Break()
    row = 0
    if fmt == "parquet":
        for table in _parquet_batches(fs, path, uri, batch_rows, broken):
            if columns is not None and fields.text_field in table.column_names:  # else all rows are rejected
                table = conform_columns(table, columns, fields, uri)
            yield row // part_rows, normalize_table(table, uri, row, fields)
            row += table.num_rows
    else:
        for lines in _line_batches(_input_lines(fs, path, uri, broken), part_rows, batch_rows):
            yield row // part_rows, parse_jsonl_batch(lines, uri, row, fields)
            row += len(lines)
    if broken.error is None:
        return
    unit = "row" if fmt == "parquet" else "line"
    kind = type(broken.error)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    where = f"{uri}: reading stopped at {unit} {row} ({name}: {broken.error})"
    if on_corrupt == "fail":
        raise CorruptInputError(f"corrupt input file {where}; input.on_corrupt_file: skip keeps what was "
                                f"read and records the file in rejected/ as read:corrupt_file")
    log.warning("corrupt input file %s; kept the %d %ss before it, recorded as read:corrupt_file", where, row, unit)
    yield row // part_rows, (JSONL_SCHEMA.empty_table(), corrupt_file_row(uri, row))


def _line_batches(lines: Iterator[bytes], part_rows: int, batch_rows: int) -> Iterator[list[bytes]]:
    """Lines in batches of ``batch_rows``, none crossing a chunk boundary."""
    batch: list[bytes] = []
    done = 0
    for line in lines:
        batch.append(line)
        if len(batch) == batch_rows or (done + len(batch)) % part_rows == 0:
            yield batch
            done += len(batch)
            batch = []
    if batch:
        yield batch


def _input_lines(fs: Any, path: str, uri: str, broken: _Break) -> Iterator[bytes]:
    """The raw lines of a JSON lines file, decompressed; a decoding failure ends them after
    the last complete line before the break and is kept in ``broken``."""
    read = 0  # lines handed out
    with _Source(fs.open_input_stream(path, compression=None)) as source, _breaks(source, uri, broken), \
            _decompressed(source, path) as stream:
        for read, line in enumerate(io.BufferedReader(stream, _READ_BUFFER), 1):
            yield line
    if broken.error is None:
        return
    # A decoder that fails drops what it decoded in that read (up to a block of lines): a
    # second pass, in small reads through a decoder that hands out everything it decoded
    # before failing, finds the lines from the last one handed out to the break.
    broken.error = None
    with _Source(fs.open_input_stream(path, compression=None)) as source, _breaks(source, uri, broken), \
            _decompressed(source, path, salvage=True) as stream:
        yield from itertools.islice(_lines_in_small_reads(stream), read, None)


def _lines_in_small_reads(stream: Any) -> Iterator[bytes]:
    """A stream's lines, each handed out as soon as a small read completes it."""
    read = getattr(stream, "read1", stream.read)  # read1: at most one read of the source
    head: list[bytes] = []  # the start of a line that the next read continues
    while chunk := read(_SALVAGE_READ):
        pieces = chunk.split(b"\n")
        for piece in pieces[:-1]:
            yield b"".join([*head, piece, b"\n"])
            head = []
        if pieces[-1]:
            head.append(pieces[-1])
    if head:
        yield b"".join(head)


@contextlib.contextmanager
def _breaks(source: "_Source", uri: str, broken: _Break) -> Iterator[None]:
    """Ends the block at a decoding failure, kept in ``broken``; a failure of the source
    itself is raised, with a note naming the file."""
    try:
        yield
    except _DECODE_ERRORS as err:
        if source.failed is not None:
            err.add_note(f"input file: {uri}")
            raise
        broken.error = err


@contextlib.contextmanager
def _decompressed(source: "_Source", path: str, *, salvage: bool = False) -> Iterator[Any]:
    """The decompressed bytes of an input file, by its extension.

    gzip goes through ISA-L (``isal.igzip``) rather than the zlib Arrow's stream uses:
    decompression is a large share of the read stage and ISA-L's is faster
    (docs/benchmarks.md). ISA-L's and Arrow's readers drop their last output when they
    fail, Python's ``gzip`` and ``bz2`` hand it out first: the second pass over a broken
    file takes those where there is one.
    """
    name = path.lower()
    if salvage and (opener := next((o for ext, o in _PYTHON_DECODERS.items() if name.endswith(ext)), None)):
        with opener(source) as stream:
            yield stream
    elif name.endswith(".gz"):
        with igzip.IGzipFile(fileobj=source, mode="rb") as stream:
            yield stream
    elif codec := next((c for ext, c in _ARROW_CODECS.items() if name.endswith(ext)), None):
        with pa.CompressedInputStream(source, codec) as stream:
            yield stream
    else:
        yield source  # nothing to decode


def _parquet_batches(fs: Any, path: str, uri: str, batch_rows: int, broken: _Break) -> Iterator[pa.Table]:
    """A Parquet file's rows in batches; a file that cannot be opened or read to its end
    ends them at the last whole batch and is kept in ``broken``. Pages written with a
    checksum are checked against it (Arrow's reader does not by default): a damaged page
    that still decodes is a break too, not altered text."""
    with _Source(fs.open_input_file(path)) as source, _breaks(source, uri, broken):
        for batch in pq.ParquetFile(source, page_checksum_verification=True).iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch])


class _Source:
    """An input file's raw bytes, read through Python so that a failure of the source itself
    is remembered and never taken for a corrupt file: a decoder or Parquet reader on top
    raises the source's error and its own alike."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.failed: BaseException | None = None

    def read(self, size: int | None = -1) -> bytes:
        return self._call(self.raw.read, None if size is None or size < 0 else size)

    def readinto(self, buffer: Any) -> int:
        return self._call(self.raw.readinto, buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._call(self.raw.seek, offset, whence)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as err:
            self.failed = err
            raise

    def tell(self) -> int:
        return self.raw.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.raw.seekable()

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "_Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

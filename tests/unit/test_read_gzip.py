"""Compressed and broken input files (jobs/input_files.py): gzip through ISA-L, other codecs
through Arrow; a file cut short or damaged is kept up to the break and recorded as
read:corrupt_file, or stops the run naming the file; a failing source is neither."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from jobs.cli import root_cause
from jobs.input_files import CorruptInputError, OnCorrupt, _Break, _input_lines, parse_input
from jobs.store import S3Options
from operators.base import DROP_REASON
from operators.io.records import FieldMapping, derived_id


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"id": f"d{i}", "text": f"document number {i} " * 20}).encode() + b"\n"
                    for i in range(start, start + n))


def _read(path: Path, fmt: str = "jsonl", on_corrupt: OnCorrupt = "skip", batch_rows: int = 7,
          part_rows: int = 1000) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    """Document ids, rejected rows, and the chunk of each rejected row."""
    ids: list[str] = []
    rejected: list[dict[str, Any]] = []
    chunks: list[int] = []
    for chunk, (docs, bad) in parse_input(str(path), fmt, FieldMapping(), S3Options(), part_rows=part_rows,
                                          batch_rows=batch_rows, on_corrupt=on_corrupt):
        ids += docs["id"].to_pylist()
        rejected += bad.to_pylist()
        chunks += [chunk] * bad.num_rows
    return ids, rejected, chunks


def _ids(path: Path, batch_rows: int = 7) -> list[str]:
    ids, rejected, _ = _read(path, batch_rows=batch_rows)
    assert rejected == []
    return ids


def test_gzip_bz2_and_plain_give_the_same_documents(tmp_path: Path) -> None:
    data = _lines(50)
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "a.jsonl.GZ").write_bytes(gzip.compress(data))
    (tmp_path / "a.jsonl.bz2").write_bytes(bz2.compress(data))
    expected = [f"d{i}" for i in range(50)]
    for name in ("a.jsonl", "a.jsonl.gz", "a.jsonl.GZ", "a.jsonl.bz2"):
        assert _ids(tmp_path / name) == expected, name


def test_concatenated_gzip_members_are_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "multi.jsonl.gz"
    path.write_bytes(gzip.compress(_lines(10)) + gzip.compress(_lines(15, start=10)))
    assert _ids(path) == [f"d{i}" for i in range(25)]


def _arrow_compressed(data: bytes, codec: str) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, codec) as stream:
        stream.write(data)
    return sink.getvalue().to_pybytes()


def _damaged(whole: bytes, damage: str) -> bytes:
    middle = len(whole) // 2
    return {"truncated": whole[:middle], "garbage": b"not compressed at all" * 10,
            "corrupt": whole[:middle] + bytes(b ^ 0x5A for b in whole[middle:middle + 64]) + whole[middle + 64:]}[damage]


COMPRESS = {"gz": gzip.compress, "bz2": bz2.compress, "zst": lambda d: _arrow_compressed(d, "zstd"),
            "lz4": lambda d: _arrow_compressed(d, "lz4")}


def _complete_lines(path: Path, ext: str) -> int:
    """Lines a streaming decoder gets out of a damaged file before it fails or ends (-1: no
    such decoder in Python's standard library)."""
    data = path.read_bytes()
    if ext == "gz":
        try:
            out = zlib.decompressobj(31).decompress(data)
        except zlib.error:
            return 0
    elif ext == "bz2":
        try:
            out = bz2.BZ2Decompressor().decompress(data)
        except OSError:
            return 0
    else:
        return -1
    return out.count(b"\n")


# zstd and LZ4 frames written without checksums decode damaged bytes without an error
@pytest.mark.parametrize(("ext", "damage"), [(ext, damage) for ext in COMPRESS for damage in ("truncated", "garbage", "corrupt")
                                             if damage != "corrupt" or ext in ("gz", "bz2")])
def test_a_damaged_file_keeps_its_lines_before_the_break_and_one_corrupt_file_row(
        tmp_path: Path, ext: str, damage: str) -> None:
    path = tmp_path / f"{damage}.jsonl.{ext}"
    path.write_bytes(_damaged(COMPRESS[ext](_lines(2000)), damage))
    ids, rejected, chunks = _read(path, batch_rows=64, part_rows=300)
    corrupt = [r for r in rejected if r[DROP_REASON] == "read:corrupt_file"]
    assert len(corrupt) == 1, rejected[-3:]
    row = corrupt[0]
    assert rejected[-1] == row  # it comes last, after the lines read
    # every complete line before the break was handed on: documents, or rejected garbage
    kept_lines = row["input_line"]
    assert ids == [f"d{i}" for i in range(len(ids))]
    assert len(ids) + len(rejected) - 1 == kept_lines or damage == "corrupt"
    if damage == "truncated":
        # the first pass loses up to 1 MB of decoded lines (all of these); the second keeps
        # every one (bz2 decodes whole 900 kB blocks only: none here; see below)
        expected = _complete_lines(path, ext)
        if expected >= 0:
            assert kept_lines == expected
        else:
            assert len(ids) > 500
    assert row == {"id": derived_id(str(path), kept_lines), "text": None, "source": None,
                   DROP_REASON: "read:corrupt_file", "input_uri": str(path), "input_line": kept_lines, "raw": None}
    assert chunks[-1] == kept_lines // 300  # in the part file of the first line not read


def test_an_invalid_deflate_block_is_a_corrupt_file(tmp_path: Path) -> None:
    # ISA-L raises IsalError, Python's gzip (the second pass) zlib.error: neither an OSError
    path = tmp_path / "bad-block.jsonl.gz"
    path.write_bytes(gzip.compress(_lines(10))[:10] + b"\xff" * 100)  # the header, then block type 3
    ids, rejected, _ = _read(path)
    assert ids == [] and [(r[DROP_REASON], r["input_line"]) for r in rejected] == [("read:corrupt_file", 0)]
    with pytest.raises(CorruptInputError, match=r"at line 0 \(zlib.error: .*invalid block type"):
        _read(path, on_corrupt="fail")


def test_a_cut_bz2_file_keeps_every_block_before_the_break(tmp_path: Path) -> None:
    data = _lines(12000)  # about 3 MB: four 900 kB blocks
    whole = bz2.compress(data)
    path = tmp_path / "cut.jsonl.bz2"
    path.write_bytes(whole[:len(whole) * 2 // 3])
    ids, rejected, _ = _read(path, batch_rows=500)
    expected = _complete_lines(path, "bz2")
    assert expected > 4000 and ids == [f"d{i}" for i in range(expected)]
    assert [(r[DROP_REASON], r["input_line"]) for r in rejected] == [("read:corrupt_file", expected)]


@pytest.mark.parametrize("ext", ["gz", "zst"])
def test_a_damaged_file_with_fail_raises_an_error_naming_the_file_and_line(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"cut.jsonl.{ext}"
    path.write_bytes(_damaged(COMPRESS[ext](_lines(2000)), "truncated"))
    _, rejected, _ = _read(path)
    line = rejected[-1]["input_line"]
    with pytest.raises(CorruptInputError) as caught:
        _read(path, on_corrupt="fail")
    message = str(caught.value)
    assert str(path) in message and f"line {line}" in message
    assert caught.value.__cause__ is None  # unchained: its own message is what `tamis run` prints
    assert isinstance(caught.value, OSError)
    printed = root_cause(caught.value)
    assert printed.startswith("CorruptInputError: corrupt input file ") and str(path) in printed


def test_a_cut_gzip_at_a_chunk_boundary_puts_the_row_in_the_next_chunk(tmp_path: Path) -> None:
    whole = gzip.compress(_lines(50))
    path = tmp_path / "cut.jsonl.gz"
    # a gzip member cut right after its deflate data: every line decodes, the trailer is missing
    path.write_bytes(whole[:-8])
    ids, rejected, chunks = _read(path, part_rows=25)
    assert ids == [f"d{i}" for i in range(50)]
    assert [r["input_line"] for r in rejected] == [50] and chunks == [2]


def test_an_empty_gzip_file_is_read_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl.gz"
    path.write_bytes(b"")
    assert _read(path) == ([], [], [])


def _parquet(tmp_path: Path, rows: int = 5000) -> bytes:
    table = pa.table({"id": [f"p{i}" for i in range(rows)], "text": [f"parquet row {i} " * 10 for i in range(rows)]})
    pq.write_table(table, tmp_path / "whole.parquet", row_group_size=1000)
    return (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "empty", "page"])
def test_a_broken_parquet_file_is_a_corrupt_file(tmp_path: Path, damage: str) -> None:
    whole = _parquet(tmp_path)
    middle = len(whole) // 2
    path = tmp_path / f"{damage}.parquet"
    path.write_bytes({"truncated": whole[:middle], "empty": b"",
                      "page": whole[:middle] + bytes(b ^ 0x5A for b in whole[middle:middle + 4096])
                      + whole[middle + 4096:]}[damage])
    ids, rejected, _ = _read(path, fmt="parquet", batch_rows=500)
    assert ids == [f"p{i}" for i in range(len(ids))]
    if damage == "page":
        assert 0 < len(ids) < 5000 and len(ids) % 500 == 0  # the batches before the damaged page
    else:
        assert ids == []  # no footer: nothing can be read
    assert [(r[DROP_REASON], r["input_line"], r["input_uri"]) for r in rejected] == [
        ("read:corrupt_file", len(ids), str(path))]
    with pytest.raises(CorruptInputError, match=f"{path}: reading stopped at row {len(ids)} "):
        _read(path, fmt="parquet", on_corrupt="fail", batch_rows=500)


def test_a_damaged_parquet_page_with_a_checksum_is_a_corrupt_file(tmp_path: Path) -> None:
    table = pa.table({"id": [f"p{i}" for i in range(5000)], "text": [f"parquet row {i} " * 10 for i in range(5000)]})
    pq.write_table(table, tmp_path / "whole.parquet", row_group_size=1000, write_page_checksum=True,
                   compression="none")  # uncompressed: a damaged page still decodes, to altered text
    whole = (tmp_path / "whole.parquet").read_bytes()
    middle = len(whole) // 2
    path = tmp_path / "page.parquet"
    path.write_bytes(whole[:middle] + bytes(b ^ 0x5A for b in whole[middle:middle + 64]) + whole[middle + 64:])
    ids, rejected, _ = _read(path, fmt="parquet", batch_rows=500)
    assert ids == [f"p{i}" for i in range(len(ids))] and len(ids) < 5000
    assert [(r[DROP_REASON], r["input_line"]) for r in rejected] == [("read:corrupt_file", len(ids))]


class _FailingSource:
    """A source stream whose reads fail after ``good`` bytes, as a dropped connection does."""

    def __init__(self, data: bytes, good: int) -> None:
        self.data, self.good, self.closed = io.BytesIO(data), good, False

    def read(self, size: int | None = None) -> bytes:
        if self.data.tell() >= self.good:
            raise OSError("AWS Error NETWORK_CONNECTION during GetObject operation: connection reset")
        return self.data.read(min(size or self.good, self.good - self.data.tell()))

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self.closed = True


class _FailingFilesystem:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def open_input_stream(self, path: str, compression: str | None = None) -> _FailingSource:
        return _FailingSource(self.data, len(self.data) // 2)


@pytest.mark.parametrize("ext", ["gz", "zst", "jsonl"])
def test_a_failing_source_is_raised_as_it_came_never_taken_for_a_corrupt_file(ext: str) -> None:
    data = _lines(2000)
    fs = _FailingFilesystem(data if ext == "jsonl" else COMPRESS[ext](data))
    broken = _Break()
    with pytest.raises(OSError, match="NETWORK_CONNECTION") as caught:
        for _ in _input_lines(fs, f"bucket/in.{ext}", f"s3://bucket/in.{ext}", broken):
            pass
    assert not isinstance(caught.value, CorruptInputError)
    assert any(f"s3://bucket/in.{ext}" in note for note in caught.value.__notes__)
    assert broken.error is None


def test_local_filesystem_reads_match_the_source_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(_lines(30) + b'{"id": "last", "text": "no newline at the end"}')
    lines = list(_input_lines(pafs.LocalFileSystem(), str(path), str(path), _Break()))
    assert b"".join(lines) == path.read_bytes() and len(lines) == 31

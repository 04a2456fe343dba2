"""Compressed JSON lines input: gzip through ISA-L, other codecs through Arrow (jobs/execute.py)."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest
from isal import isal_zlib

from jobs.execute import _parse_input
from jobs.store import S3Options
from operators.io.records import FieldMapping


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"id": f"d{i}", "text": f"document number {i} " * 20}).encode() + b"\n"
                    for i in range(start, start + n))


def _ids(path: Path, batch_rows: int = 7) -> list[str]:
    return [i for _, (docs, _) in _parse_input(str(path), "jsonl", FieldMapping(), S3Options(), 1000, batch_rows)
            for i in docs["id"].to_pylist()]


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


@pytest.mark.parametrize("damage", ["truncated", "garbage", "corrupt"])
def test_a_damaged_gzip_fails_naming_the_file(tmp_path: Path, damage: str) -> None:
    whole = gzip.compress(_lines(200))
    path = tmp_path / f"{damage}.jsonl.gz"
    middle = len(whole) // 2
    path.write_bytes({"truncated": whole[:middle], "garbage": b"not gzip at all" * 10,
                      "corrupt": whole[:middle] + bytes(b ^ 0x5A for b in whole[middle:middle + 64])
                      + whole[middle + 64:]}[damage])
    # EOFError when cut short, BadGzipFile (an OSError) without a gzip header, ISA-L's
    # error for a damaged stream, or a bad checksum (BadGzipFile)
    with pytest.raises((EOFError, OSError, isal_zlib.error)) as caught:
        _ids(path)
    assert any(str(path) in note for note in getattr(caught.value, "__notes__", [])), caught.value

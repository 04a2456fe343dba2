"""Planted broken rows of every kind land in rejected/ with the right reason; counts match exactly."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import read_output, read_rejected, run_config

pytestmark = pytest.mark.integration

GOOD = "A perfectly ordinary document with enough words to be a document."


def jsonl_lines() -> tuple[list[bytes], Counter[str]]:
    lines: list[bytes] = []
    for i in range(30):
        lines.append(json.dumps({"id": f"good-{i}", "text": f"{GOOD} {i}", "source": "web"}).encode())
    planted = {
        "malformed_json": [b'{"id": "m1", "text": "unterminated', b"not json at all", b'["a", "list"]'],
        "invalid_utf8": [b'{"id": "u1", "text": "caf\xe9"}', b'{"id": "u2", "text": "lone \\ud800 surrogate"}'],
        "missing_text": [b'{"id": "t1", "body": "wrong field"}', b'{"id": "t2", "text": null}'],
        "non_string_text": [b'{"id": "n1", "text": 42}', b'{"id": "n2", "text": ["a"]}', b'{"id": "n3", "text": {}}'],
        "empty_text": [b'{"id": "e1", "text": ""}', b'{"id": "e2", "text": " \\n\\t "}'],
        "text_too_large": [json.dumps({"id": "big1", "text": "x" * 5001}).encode()],
    }
    expected: Counter[str] = Counter()
    for reason, bad in planted.items():
        for n, line in enumerate(bad):
            lines.insert(3 + 7 * n + len(expected), line)
            expected[f"read:{reason}"] += 1
    return lines, expected


def parquet_table() -> tuple[pa.Table, Counter[str]]:
    texts = [f"{GOOD} p{i}".encode() for i in range(10)] + [b"\xff\xfe bad", None, b"", b"y" * 5001]
    table = pa.table({"id": [f"p{i}" for i in range(len(texts))], "text": pa.array(texts, pa.binary()),
                      "lang": ["en"] * len(texts)})
    return table, Counter({"read:invalid_utf8": 1, "read:missing_text": 1, "read:empty_text": 1,
                           "read:text_too_large": 1})


def base_config(tmp_path: Path, paths: list[str], fmt: str) -> dict[str, Any]:
    return {"name": "bad", "store": str(tmp_path / "store"),
            "input": {"paths": paths, "format": fmt, "max_text_bytes": 5000, "source": "planted"},
            "stages": [{"op": "heuristics"}], "execution": {"batch_rows": 8, "part_rows": 16}}


def test_jsonl_broken_rows(ray_local: None, tmp_path: Path) -> None:
    lines, expected = jsonl_lines()
    data = b"\n".join(lines) + b"\n\n"  # trailing blank lines are separators, not rows
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(data))
    pipeline, state = run_config(tmp_path, base_config(tmp_path, [str(tmp_path / "*.jsonl*")], "jsonl"))
    rejected = read_rejected(pipeline)
    assert Counter(rejected["drop_reason"].to_pylist()) == Counter({k: 2 * v for k, v in expected.items()})
    assert state["stages"][0]["dropped"] == {k: 2 * v for k, v in expected.items()}
    assert read_output(pipeline, state).num_rows == 60
    assert state["stages"][0]["rows_in"] == 2 * len(lines)


def test_parquet_broken_rows(ray_local: None, tmp_path: Path) -> None:
    table, expected = parquet_table()
    pq.write_table(table, tmp_path / "in.parquet")
    pipeline, state = run_config(tmp_path, base_config(tmp_path, [str(tmp_path / "in.parquet")], "parquet"))
    assert Counter(read_rejected(pipeline)["drop_reason"].to_pylist()) == expected
    output = read_output(pipeline, state)
    assert output.num_rows == 10
    assert set(output["lang"].to_pylist()) == {"en"}  # input metadata passes through

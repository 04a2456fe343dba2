"""Parsing raw JSON lines in unit tests: both read paths, checked against each other."""

from __future__ import annotations

from operators.io.jsonl_block import parse_jsonl_batch
from operators.io.records import JSONL_SCHEMA, REJECTED_SCHEMA, FieldMapping, parse_jsonl_lines

URI = "/data/in/part-0.jsonl"
FIELDS = FieldMapping()

def parse(*lines: bytes | str, first_line: int = 0,
          fields: FieldMapping = FIELDS) -> tuple[list[dict], list[dict]]:
    """Documents and rejected rows of ``lines`` as lists of row dicts."""
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    docs, rejected = parse_jsonl_lines(raw, URI, first_line, fields)
    # the Arrow batch path must give exactly the same tables (or fall back to this path)
    fast_docs, fast_rejected = parse_jsonl_batch(raw, URI, first_line, fields)
    assert fast_docs.equals(docs) and fast_rejected.equals(rejected)
    assert docs.schema == JSONL_SCHEMA
    assert rejected.schema == REJECTED_SCHEMA
    return docs.to_pylist(), rejected.to_pylist()


def reject_one(line: bytes | str, fields: FieldMapping = FIELDS) -> dict:
    """The single rejected row of ``line``, asserting no document came out."""
    docs, rejected = parse(line, fields=fields)
    assert docs == []
    assert len(rejected) == 1
    return rejected[0]

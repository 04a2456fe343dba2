"""Arbitrary bytes as JSON lines: the parsers never raise, and every record line is accounted for.

Properties of ``operators.io.records.parse_jsonl_lines`` and its Arrow twin
``operators.io.jsonl_block.parse_jsonl_batch`` (issue 21; the Ray-level suite is
tests/integration/test_hostile_jsonl.py and test_hostile_parquet.py, whose support module
states the conventions):

- neither raises, whatever the bytes;
- documents + rejected rows = record lines, where a line that is empty or ASCII whitespace
  (after a byte-order mark on the file's first line) is a separator, not a record;
- each rejected row names a distinct record line; each document has an id and a non-blank,
  valid UTF-8 text within ``max_text_bytes``;
- both give the same tables.

Nesting deep enough to crash a parser runs in a subprocess, so a segmentation fault is a
failed test and not a dead test session.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from operators.io.jsonl_block import parse_jsonl_batch
from operators.io.records import FieldMapping, parse_jsonl_lines

REPO = Path(__file__).resolve().parents[2]
URI = "s3://bucket/hostile/part-0.jsonl"
FIELDS = FieldMapping(max_text_bytes=40)
BOM = b"\xef\xbb\xbf"


def record_lines(lines: list[bytes], first_line: int) -> list[int]:
    """The line numbers that are records, by the convention above."""
    numbers = []
    for offset, line in enumerate(lines):
        if first_line + offset == 0 and line.startswith(BOM):
            line = line[len(BOM):]
        if line.strip():
            numbers.append(first_line + offset)
    return numbers


def check_accounted(lines: list[bytes], first_line: int = 0, fields: FieldMapping = FIELDS,
                    strict_bom: bool = False) -> None:
    """The properties above. A first line that is a byte-order mark and whitespace is
    held to the separator convention only with ``strict_bom`` (its own test below), so
    that the properties keep testing everything else."""
    slow = parse_jsonl_lines(lines, URI, first_line, fields)
    fast = parse_jsonl_batch(lines, URI, first_line, fields)
    expected = record_lines(lines, first_line)
    docs, rejected = slow
    rejected_lines = rejected["input_line"].to_pylist()
    if not strict_bom and first_line == 0 and lines and lines[0].startswith(BOM) and 0 not in expected:
        expected = [0, *expected] if 0 in rejected_lines else expected
    assert docs.num_rows + rejected.num_rows == len(expected), (
        f"{docs.num_rows} documents + {rejected.num_rows} rejected for {len(expected)} records", lines,
        rejected.to_pylist())
    assert len(set(rejected_lines)) == len(rejected_lines) and set(rejected_lines) <= set(expected), (
        rejected_lines, expected)
    for doc in docs.to_pylist():
        assert doc["id"] is not None and doc["text"] is not None, doc
        assert doc["text"].strip() and len(doc["text"].encode("utf-8")) <= fields.max_text_bytes, doc
        doc["id"].encode("utf-8")
        doc["source"].encode("utf-8")
    assert all(r.startswith("read:") for r in rejected["drop_reason"].to_pylist())
    assert fast[0].equals(slow[0]), (fast[0].to_pylist(), slow[0].to_pylist())
    assert fast[1].equals(slow[1]), (fast[1].to_pylist(), slow[1].to_pylist())


def split_lines(blob: bytes) -> list[bytes]:
    """How the read stage cuts a file: at ``\\n`` only, each line keeping its terminator."""
    return io.BytesIO(blob).readlines()


@pytest.mark.parametrize("blob", [b"\xef\xbb\xbf", b"\xef\xbb\xbf\n", b"\xef\xbb\xbf \t\r\n",
                                  b"\xef\xbb\xbf\n" + b'{"text": "after a lone byte-order mark"}\n'])
def test_a_lone_byte_order_mark_line_is_a_separator(blob: bytes) -> None:
    """The mark is dropped from the file's first line; what is left is blank: no record."""
    check_accounted(split_lines(blob), 0, strict_bom=True)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=300), st.sampled_from([0, 7]))
@example(b"\xef\xbb\xbf\n" + b'{"text": "after a lone byte-order mark"}\n', 0)
@example(b"null\n" + b'{"text": "x"}\n', 0)
@example(b'{"text": "a"}\r{"text": "b"}\r\n', 0)
def test_arbitrary_bytes_are_accounted_for(blob: bytes, first_line: int) -> None:
    check_accounted(split_lines(blob), first_line)


characters = st.characters(codec=None, exclude_categories=())  # lone surrogates included
leaves = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**20, max_value=10**40)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(characters, max_size=12))
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(characters, max_size=4), inner, max_size=3), max_leaves=8)
objects = st.fixed_dictionaries({}, optional={"id": values, "text": values | st.text(characters, max_size=50),
                                              "source": values, "meta": values})
NOISE = [b"\x00", b"\xff", b"\\", b'"', b"{", b"}", b"[", b",", b":", b"\r", b"\xef\xbb\xbf", b"\xed\xa0\x80",
         b"\\ud800", b"\\u00", b"1e999", b" ", b"\t", b"\x01", b"\xc2\xa0"]


@st.composite
def json_ish_lines(draw: st.DrawFn) -> list[bytes]:
    """Objects as JSON, some mutated (a byte of noise inserted, or cut), with odd line ends and blank lines."""
    lines = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["object", "object", "object", "mutated", "cut", "blank"]))
        if kind == "blank":
            body = draw(st.sampled_from([b"", b" ", b"\t", b"\r", b"\x0b\x0c", b"\xef\xbb\xbf", b"\xc2\xa0"]))
        else:
            text = json.dumps(draw(objects), ensure_ascii=draw(st.booleans()))
            body = text.encode("utf-8", "surrogatepass")
            if kind == "mutated":
                at = draw(st.integers(0, len(body)))
                body = body[:at] + draw(st.sampled_from(NOISE)) + body[at:]
            elif kind == "cut":
                body = body[:draw(st.integers(0, len(body)))]
        lines.append(body + draw(st.sampled_from([b"\n", b"\n", b"\r\n", b" \n"])))
    if draw(st.booleans()):
        lines[-1] = lines[-1].rstrip(b"\n")  # the file's last line, without a newline
    return lines


@settings(max_examples=400, deadline=None, derandomize=True)
@given(json_ish_lines(), st.sampled_from([0, 3]))
def test_json_ish_lines_are_accounted_for(lines: list[bytes], first_line: int) -> None:
    check_accounted(lines, first_line)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(objects, min_size=1, max_size=12))
def test_clean_objects_give_the_same_tables_either_way(records: list[dict]) -> None:
    """Batches that may all go through Arrow: still the per-line path's result, record for record."""
    lines = [json.dumps(r, ensure_ascii=True).encode() + b"\n" for r in records]
    check_accounted(lines, 0, FieldMapping())


DEEP_SCRIPT = """
import json, sys
from operators.io.jsonl_block import parse_jsonl_batch
from operators.io.records import FieldMapping, parse_jsonl_lines
depth, form = int(sys.argv[1]), sys.argv[2]
deep = {
    "list_field": b'{"id": "deep", "text": "kept text", "d": ' + b"[" * depth + b"]" * depth + b"}",
    "object_field": b'{"id": "deep", "text": "kept text", "d": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}",
    "text": b'{"id": "deep", "text": ' + b"[" * depth + b"]" * depth + b"}",
    "bare": b"[" * depth + b"]" * depth,
    "unclosed": b'{"text": "x", "d": ' + b"[" * depth,
}[form]
lines = [b'{"id": "a", "text": "plain a"}\\n', deep + b"\\n", b'{"id": "b", "text": "plain b"}\\n']
out = {}
for fn in (parse_jsonl_lines, parse_jsonl_batch):
    print(f"in {fn.__name__}", file=sys.stderr, flush=True)  # the last words before a crash
    try:
        docs, rejected = fn(lines, "deep.jsonl", 0, FieldMapping())
    except BaseException as err:
        out[fn.__name__] = f"raised {type(err).__name__}: {err}"
        continue
    out[fn.__name__] = [docs["id"].to_pylist(), rejected["drop_reason"].to_pylist(), rejected["input_line"].to_pylist()]
print(json.dumps(out))
"""


@pytest.mark.parametrize("form", ["list_field", "object_field", "text", "bare", "unclosed"])
@pytest.mark.parametrize("depth", [900, 5_000, 100_000])
def test_deep_nesting_is_a_record_not_a_crash(depth: int, form: str) -> None:
    done = subprocess.run([sys.executable, "-c", DEEP_SCRIPT, str(depth), form], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (f"depth {depth} {form}: exit {done.returncode}"
                                  f"{' (segmentation fault)' if done.returncode == -11 else ''} "
                                  f"{done.stderr.strip().splitlines()[-1:]}")
    out = json.loads(done.stdout)
    for name, result in out.items():
        assert not isinstance(result, str), f"depth {depth} {form}: {name} {result[:200]}"
    assert out["parse_jsonl_lines"] == out["parse_jsonl_batch"], out
    ids, reasons, rejected_lines = out["parse_jsonl_lines"]
    assert "a" in ids and "b" in ids and len(ids) + len(reasons) == 3, out  # the plain lines are untouched
    assert rejected_lines in ([], [1]), out

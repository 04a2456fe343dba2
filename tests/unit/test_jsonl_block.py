"""The Arrow batch path of the JSONL read gives what the per-line path gives, and is used."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from operators.io.jsonl_block import _is_utf8, arrow_rows, parse_jsonl_batch
from operators.io.records import FieldMapping, parse_jsonl_lines

REPO = Path(__file__).resolve().parents[2]
URI = "s3://bucket/in/part-3.jsonl"


def _same(lines: list[bytes], first_line: int = 0, fields: FieldMapping = FieldMapping()) -> None:
    slow = parse_jsonl_lines(lines, URI, first_line, fields)
    fast = parse_jsonl_batch(lines, URI, first_line, fields)
    assert fast[0].equals(slow[0]), (fast[0].to_pylist()[:3], slow[0].to_pylist()[:3])
    assert fast[1].equals(slow[1]), (fast[1].to_pylist(), slow[1].to_pylist())


def _line(**record: object) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def test_the_shipped_sample_gives_the_same_tables_mostly_through_arrow() -> None:
    files = sorted((REPO / "data" / "sample").glob("*.jsonl.gz"))
    assert files
    clean = fast = 0
    for path in files:
        with gzip.open(path, "rb") as f:
            lines = f.readlines()
        for start in range(0, len(lines), 50):
            batch = lines[start:start + 50]
            _same(batch, first_line=start)
            # the sample plants bad lines (invalid UTF-8, broken JSON) in a few batches
            if parse_jsonl_lines(batch, URI, start, FieldMapping())[1].num_rows == 0:
                clean += 1
                fast += arrow_rows(batch, start, FieldMapping()) is not None
    assert clean >= 5 and fast == clean, f"only {fast} of {clean} clean batches went through Arrow"


def test_problem_rows_in_a_clean_batch_stay_on_the_arrow_path() -> None:
    big = "word " * 30
    lines = [_line(id="a", text="plain", source="web"), b"\n", b"   \r\n",
             _line(text="no id, so a derived one", source="web"),  # derived from the line number
             _line(id=None, text="null id", source=None),  # default source
             _line(id="b", text=None), _line(id="c"),  # missing text: kept with the raw line
             _line(id="d", text="   \t "), _line(id="e", text="\x1c\x1d\u2003"),  # blank to str.strip
             _line(id="f", text="\x1cx"), _line(id="g", text="é ü"),  # not blank
             _line(id="h", text=big), _line(id="i", text="emoji \U0001F600 and \\ escapes")]
    fields = FieldMapping(max_text_bytes=len(big) - 1)
    assert arrow_rows(lines, 7, fields) is not None
    _same(lines, first_line=7, fields=fields)
    docs, rejected = parse_jsonl_batch(lines, URI, 7, fields)
    assert [r["drop_reason"] for r in rejected.to_pylist()] == [
        "read:missing_text", "read:missing_text", "read:empty_text", "read:empty_text", "read:text_too_large"]
    assert docs.num_rows == 6


@pytest.mark.parametrize("odd", [
    b'{"id": "x", "text": "bad \xff byte"}\n',  # invalid UTF-8
    b'{"id": "x", "text": "lone \\ud800 surrogate"}\n',
    b'["not", "an", "object"]\n', b'{"text": "a"} {"text": "b"}\n', b'{"text": "a"\n',
    b'{"id": 7, "text": "numeric id"}\n', b'{"id": "x", "text": 5}\n',
    b'{"id": "x", "text": "extra field", "n": 1}\n',  # a number in metadata
    b'{"id": "x", "text": "extra field", "lang": null}\n',  # null and missing look alike in Arrow
    b'{"id": "x", "text": "a", "text": "b"}\n',  # a repeated key: json.loads keeps the last
])
def test_what_arrow_refuses_takes_the_per_line_path(odd: bytes) -> None:
    lines = [_line(id="a", text="fine"), odd, _line(id="b", text="also fine")]
    assert arrow_rows(lines, 0, FieldMapping()) is None
    _same(lines)


@pytest.mark.parametrize("depth", [70, 5_000, 100_000])
def test_a_deeply_nested_line_never_reaches_arrow(depth: int) -> None:
    # Arrow's reader took seconds on a line nested 5,000 deep and crashed the process at 100,000
    deep = b'{"id": "d", "text": "x", "meta": ' + b"[" * depth + b"]" * depth + b"}\n"
    lines = [_line(id="a", text="fine"), deep, _line(id="b", text="also fine")]
    assert arrow_rows(lines, 0, FieldMapping()) is None
    _same(lines)


def test_brackets_inside_strings_stay_on_the_arrow_path() -> None:
    lines = [_line(id="a", text="if (x) { y[0] = {z: [1]}; }" * 50), _line(id="b", text="[[[" * 1000 + '\\"{')]
    assert arrow_rows(lines, 0, FieldMapping()) is not None
    _same(lines)


def test_string_fields_outside_the_mapping_become_metadata_on_the_arrow_path() -> None:
    lines = [_line(id="a", text="one", url="https://x/\u00e9?q=\"1\"", lang="en"),
             _line(lang="fr", id="b", text="two", url="/p\n\t\u0001")]
    assert arrow_rows(lines, 0, FieldMapping()) is not None
    _same(lines)
    # an extra field missing from some rows cannot be told from null: per line
    _same([*lines, _line(id="c", text="three", url="/only url")])


def test_byte_order_mark_and_mappings() -> None:
    lines = [b"\xef\xbb\xbf" + _line(doc="1", body="first", site="a"), _line(doc="2", body="second", site="b"),
             _line(doc="3", body="third", site="c")]
    mapped = FieldMapping(text_field="body", id_field="doc", source_field="site")
    for fields in (mapped, FieldMapping(text_field="body", id_field="doc", source_field=None, source="fixed"),
                   FieldMapping(text_field="body", id_field=None, source_field="site", source="fixed")):
        assert arrow_rows(lines, 0, fields) is not None
        _same(lines, fields=fields)
    _same(lines, first_line=5, fields=mapped)  # a mark after the file's first line is data: per line
    unmapped_source = [_line(doc="1", body="first", site="a"), _line(doc="2", body="second")]
    _same(unmapped_source, fields=FieldMapping(text_field="body", id_field="doc", source_field="site",
                                               default_source="none"))


def test_a_first_line_that_is_only_a_byte_order_mark_is_a_blank_line_on_the_arrow_path() -> None:
    for mark in (b"\xef\xbb\xbf\n", b"\xef\xbb\xbf \t\r\n", b"\xef\xbb\xbf"):
        lines = [mark, _line(id="a", text="after the mark"), _line(id="b", text="and another")]
        parsed = arrow_rows(lines, 0, FieldMapping())
        assert parsed is not None and list(parsed[2]) == [1, 2]
        _same(lines)
        docs, rejected = parse_jsonl_batch(lines, URI, 0, FieldMapping())
        assert docs["id"].to_pylist() == ["a", "b"] and rejected.num_rows == 0
    _same([b"\xef\xbb\xbf\n", b"\n"])  # nothing but separators


def test_empty_and_blank_batches() -> None:
    _same([b"null\n", _line(id="a", text="after a null")])  # Arrow crashes on a batch starting so
    _same([_line(id="a", text="x") + b" null " + _line(id="b", text="y")])  # three values, one line
    _same([])
    _same([b"\n", b"  \n"])


@pytest.mark.parametrize("raw", [b"plain", "caf\u00e9 \U0001f389".encode(), b"\xed\xa0\x80", b"\xed\x9f\xbf",
                                 b"\xc0\x80", b"\xc2", b"\xe2\x82", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
                                 b"\xf8\x88\x80\x80\x80", b"\xff", b"\x80", b"a\x00b", b""])
def test_utf8_check_agrees_with_python(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert _is_utf8(raw) is valid
    _same([_line(id="a", text="ok"), b'{"id": "b", "text": "' + raw.replace(b"\x00", b"") + b'"}\n'])

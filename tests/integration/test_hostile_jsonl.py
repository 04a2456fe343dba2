"""Hostile and messy input never stops a run and never corrupts a result (issue 21): JSON lines and
compressed files.

Each test builds hostile files in tmp_path, runs them through the demo pipeline's shape plus
both dedups (read -> exact_dedup -> minhash_dedup -> heuristics -> filter that drops only
duplicates) on a real local Ray, and checks, record by record against a ground-truth table
(tests/support/hostile_inputs.py, which states the conventions asserted), that the run
either completed with every record accounted for (documents out + rejected rows per reason =
records in, each with an allowed outcome) or stopped with a one-line error naming the file
(``jobs.cli.root_cause``). Many hostile records share a run, so the runs stay few; a failure
lists every record that broke, with its file, line and label.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import xxhash

from operators.io.records import derived_id
from tests.integration.conftest import run_config
from tests.support.hostile_inputs import ABSENT, ANY_READ, DOC, JsonlFile, Record, exact
from tests.support.hostile_run import (DUP, INVALID, LIMIT, MALFORMED, TEXTS, assert_stopped_naming, pipeline,
                                       run_and_account)

pytestmark = pytest.mark.integration

# -- JSON lines: one file of hostile lines, and the odd containers around it ---------------------------


def hostile_lines(f: JsonlFile, uri: str) -> None:
    """Every kind of hostile line, interleaved with plain ones (batches of 8 mix both paths)."""

    def plain(label: str = "plain", **extra: Any) -> Record:
        m = f.marker()
        return f.doc(label, {"id": f"id-{m}", "text": TEXTS.text(m), "source": "web", **extra})

    def raw(label: str, template: str, allowed: str | tuple[str, ...], **kw: Any) -> Record:
        """A raw line; ``{m}`` in ``template`` is the marker; ``text=``/``id=`` are checked if kept."""
        m = f.marker()
        line = template.replace("{m}", m).replace("{body}", TEXTS.body(m)).encode("utf-8", "surrogatepass")
        if "text" in kw and kw["text"] is not None:
            kw["text"] = kw["text"].replace("{m}", m).replace("{body}", TEXTS.body(m))
        kw.setdefault("marker", m)
        return f.add(label, line, allowed, **kw)

    def align(n: int = 8) -> None:  # the next line starts a batch
        while len(f.chunks) % n:
            plain("padding")

    for _ in range(8):  # one clean batch: the Arrow path
        plain()

    # -- nesting and numbers
    m = f.marker()
    f.add("nesting 300 deep in a field", f'{{"id": "id-{m}", "text": "{TEXTS.text(m)}", "deep": '.encode()
          + b"[" * 300 + b"1" + b"]" * 300 + b"}", DOC, text=TEXTS.text(m), metadata={"deep": nest(300)})
    digits = "9" * 4000
    raw("4000-digit integer in a field", '{"id": "id-{m}", "text": "{body} {m}", "n": ' + digits + "}", DOC,
        text="{body} {m}", metadata=exact('{"n": ' + digits + "}"))
    digits = "8" * 5000  # past Python's default int-string limit of 4300 digits: valid JSON all the same
    raw("5000-digit integer in a field", '{"id": "id-{m}", "text": "{body} {m}", "n": ' + digits + "}",
        (DOC, MALFORMED), text="{body} {m}", metadata=exact('{"n": ' + digits + "}"))
    raw("1e400 in a field (past a double's range)", '{"id": "id-{m}", "text": "{body} {m}", "x": 1e400}', DOC,
        text="{body} {m}", metadata=exact('{"x": 1e400}'))
    value = "0.1000000000000000055511151231257827021181583404541015625"
    raw("a 55-digit decimal in a field", '{"id": "id-{m}", "text": "{body} {m}", "x": ' + value + "}", DOC,
        text="{body} {m}", metadata=exact('{"x": ' + value + "}"))
    raw("NaN in a field (not JSON)", '{"id": "id-{m}", "text": "{body} {m}", "x": NaN}', (DOC, MALFORMED),
        text="{body} {m}")
    raw("1e400 as the text", '{"id": "id-{m}", "text": 1e400}', "read:non_string_text")
    raw("id 1e400", '{"id": 1e400, "text": "{body} {m}"}', DOC, text="{body} {m}")
    raw("id: an integer past 64 bits", '{"id": 123456789012345678901234567890, "text": "{body} {m}"}', DOC,
        text="{body} {m}", id="123456789012345678901234567890")
    raw("id 1.5", '{"id": 1.5, "text": "{body} {m}"}', DOC, text="{body} {m}", id="1.5")

    # -- ids
    raw("id 7, a number", '{"id": 7, "text": "{body} {m}"}', DOC, text="{body} {m}", id="7")
    raw("id true", '{"id": true, "text": "{body} {m}"}', DOC, text="{body} {m}")
    raw("id a list", '{"id": [1, "a"], "text": "{body} {m}"}', DOC, text="{body} {m}")
    raw("id an object", '{"id": {"k": 1}, "text": "{body} {m}"}', DOC, text="{body} {m}")
    null_id = raw("id null: derived", '{"id": null, "text": "{body} {m}"}', DOC, text="{body} {m}")
    null_id.id = derived_id(uri, null_id.line)
    absent = raw("id absent: derived", '{"text": "{body} {m}"}', DOC, text="{body} {m}")
    absent.id = derived_id(uri, absent.line)
    raw("id empty string", '{"id": "", "text": "{body} {m}"}', DOC, text="{body} {m}", id="")
    long_id = "L" * 100_000
    raw("id 100 KB long", '{"id": "' + long_id + '", "text": "{body} {m}"}', DOC, text="{body} {m}", id=long_id)
    raw("id with escaped NUL and newline", '{"id": "a\\u0000\\nb", "text": "{body} {m}"}', DOC,
        text="{body} {m}", id="a\x00\nb")
    plain()
    raw("id '7', a string, after the number 7", '{"id": "7", "text": "{body} {m}"}', DUP, text="{body} {m}")
    raw("id '' again", '{"id": "", "text": "{body} {m}"}', DUP, text="{body} {m}")
    raw("id equal to the null-id record's derived id", '{"id": "' + null_id.id + '", "text": "{body} {m}"}', DUP,
        text="{body} {m}")
    raw("id 'rep' first", '{"id": "rep", "text": "{body} {m}"}', DOC, text="{body} {m}", id="rep")
    raw("id 'rep' second", '{"id": "rep", "text": "{body} {m}"}', DUP, text="{body} {m}")
    plain()
    raw("id 'rep' third", '{"id": "rep", "text": "{body} {m}"}', DUP, text="{body} {m}")
    raw("id 'rj' first, empty text (read-rejected: no occurrence)", '{"id": "rj", "text": ""}', "read:empty_text")
    raw("id 'rj' second, the first document with it", '{"id": "rj", "text": "{body} {m}"}', DOC, text="{body} {m}",
        id="rj")

    # -- escapes and surrogates
    for label, bad in (("invalid escape \\x", "\\x41"), ("invalid escape \\u12g4", "\\u12g4"),
                       ("invalid escape \\'", "\\'"), ("backslash before the closing quote", "\\")):
        raw(label, '{"id": "id-{m}", "text": "{body} {m} ' + bad + '"}', MALFORMED)
    raw("lone high surrogate in the text", '{"id": "id-{m}", "text": "{body} {m} \\ud800 x"}', INVALID)
    raw("lone low surrogate in the id", '{"id": "\\udc00", "text": "{body} {m}"}', INVALID)
    raw("lone surrogate in a field name", '{"id": "id-{m}", "text": "{body} {m}", "\\ud800": 1}', INVALID)
    raw("lone surrogate in a field value", '{"id": "id-{m}", "text": "{body} {m}", "k": "\\udbff"}', INVALID)
    raw("lone surrogate in the source", '{"id": "id-{m}", "text": "{body} {m}", "source": "\\ud801"}', INVALID)
    raw("reversed surrogate pair", '{"id": "id-{m}", "text": "{body} {m} \\ude00\\ud83d"}', INVALID)
    raw("escaped surrogate pair", '{"id": "id-{m}", "text": "{body} {m} \\ud83d\\ude00"}', DOC,
        text="{body} {m} \U0001F600")

    # -- NUL and control characters
    raw("raw NUL inside a string", '{"id": "id-{m}", "text": "{body} {m} a\x00b"}', MALFORMED)
    raw("raw U+0001 inside a string", '{"id": "id-{m}", "text": "{body} {m} a\x01b"}', MALFORMED)
    raw("raw tab inside a string", '{"id": "id-{m}", "text": "{body} {m}\tb"}', MALFORMED)
    raw("raw NUL between tokens", '{"id": "id-{m}",\x00 "text": "{body} {m}"}', MALFORMED)
    escapes = "".join(f"\\u{c:04x}" for c in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029])
    raw("every C0 control, DEL, NEL, LS and PS escaped", '{"id": "id-{m}", "text": "{body} {m} ' + escapes + '"}',
        DOC, text="{body} {m} " + "".join(map(chr, [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029])))
    raw("raw DEL, NEL, LS, PS in UTF-8", '{"id": "id-{m}", "text": "{body} {m} a\x7fb\x85c\u2028d\u2029e"}', DOC,
        text="{body} {m} a\x7fb\x85c\u2028d\u2029e")
    raw("a line of one NUL byte", "\x00", MALFORMED, marker=None)
    f.doc("text of a zero-width space only", {"id": "zwsp", "text": "\u200b"})  # not blank to str.strip

    # -- byte-order marks and line ends
    m = f.marker()
    f.add("byte-order mark starting a line mid-file", b"\xef\xbb\xbf" + json.dumps(
        {"id": f"id-{m}", "text": TEXTS.text(m)}).encode(), MALFORMED)
    m = f.marker()
    f.doc("byte-order mark inside the text", {"id": f"id-{m}", "text": f"\ufeff{TEXTS.text(m)}\ufeff"})
    m = f.marker()
    f.doc("CRLF line end", {"id": f"id-{m}", "text": TEXTS.text(m)}, end=b"\r\n")
    m = f.marker()
    f.add("spaces, tab and CR after the object", json.dumps({"id": f"id-{m}", "text": TEXTS.text(m)}).encode()
          + b" \t \r", DOC, text=TEXTS.text(m))
    m = f.marker()
    f.add("spaces and tabs before the object", b" \t  " + json.dumps({"id": f"id-{m}", "text": TEXTS.text(m)}).encode(),
          DOC, text=TEXTS.text(m))
    for label, line in (("empty line", b""), ("spaces", b"   "), ("tab", b"\t"), ("lone CR", b"\r"),
                        ("VT, FF, space, tab", b"\x0b\x0c \t")):
        f.blank(label, line)
    f.blank("CRLF blank line", b"", end=b"\r\n")
    raw("no-break space only (not ASCII whitespace: a record)", "\u00a0", MALFORMED, marker=None)

    # -- sizes
    def sized(marker: str, size: int) -> str:
        return (TEXTS.text(marker) + " " + "z" * size)[:size]

    m = f.marker()
    f.doc("text exactly max_text_bytes", {"id": f"id-{m}", "text": sized(m, LIMIT)})
    m = f.marker()
    f.doc("text one byte over", {"id": f"id-{m}", "text": sized(m, LIMIT + 1)}, "read:text_too_large")
    m = f.marker()
    f.doc("text of 3-byte characters: fewer characters than the limit, more bytes",
          {"id": f"id-{m}", "text": f"{m} " + "\u20ac" * (LIMIT // 3 + 1)}, "read:text_too_large")
    m = f.marker()
    f.doc("a 60 KB line whose text is small", {"id": f"id-{m}", "text": TEXTS.text(m), "pad": "p" * 60_000})
    m = f.marker()
    f.doc("fields named like tamis's own columns", {"id": f"id-{m}", "text": TEXTS.text(m),
                                                   "drop_reason": "dedup:exact", "_tamis_file": "x", "metadata": "m",
                                                   "dedup_exact_keep": False})
    m = f.marker()
    f.doc("10,000 fields", {"id": f"id-{m}", "text": TEXTS.text(m), **{f"f{i}": str(i) for i in range(10_000)}})

    # -- text missing, empty or of the wrong type
    for label, value, reason in (("text empty", "", "empty_text"), ("text whitespace", " \n\t ", "empty_text"),
                                 ("text Unicode spaces only", "\u3000\u2003\u00a0", "empty_text"),
                                 ("text null", None, "missing_text"), ("text a number", 42, "non_string_text"),
                                 ("text a list", ["a"], "non_string_text"), ("text an object", {"a": "b"},
                                                                            "non_string_text"),
                                 ("text true", True, "non_string_text")):
        f.doc(label, {"id": f"id-{f.marker()}", "text": value}, f"read:{reason}")
    f.doc("no text field", {"id": f"id-{f.marker()}", "body": "wrong field"}, "read:missing_text")

    # -- not one JSON object
    align()
    raw("null starting a batch", "null", MALFORMED, marker=None)
    for label, line in (("an empty list", "[]"), ("a number", "42"), ("a string", '"just a string"'),
                        ("true", "true"), ("two objects on one line", '{"text": "a"} {"text": "b"}'),
                        ("a truncated object", '{"id": "t", "text": "cut sho'), ("an object then garbage",
                                                                               '{"text": "a"} trailing')):
        raw(label, line, MALFORMED, marker=None)
    align()
    raw("a bare list starting a batch", '[{"text": "a"}]', MALFORMED, marker=None)
    raw("a repeated text key: the last wins", '{"id": "id-{m}", "text": "first {m}", "text": "{body} {m}"}', DOC,
        text="{body} {m}")

    # -- invalid UTF-8
    for label, bad in (("byte 0xff", b"\xff"), ("overlong slash", b"\xc0\xaf"), ("encoded surrogate", b"\xed\xa0\x80"),
                       ("past U+10FFFF", b"\xf4\x90\x80\x80"), ("cut multibyte character", b"\xe2\x82")):
        m = f.marker()
        f.add(f"invalid UTF-8: {label}", f'{{"id": "id-{m}", "text": "{TEXTS.text(m)} '.encode() + bad + b'"}',
              INVALID)
    m = f.marker()
    f.add("a Latin-1 line", f'{{"id": "id-{m}", "text": "{TEXTS.text(m)} caf\xe9"}}'.encode("latin-1"), INVALID)

    # -- odd sources
    plain("source a number", source=5)
    plain("source null", source=None)
    plain("source empty", source="")
    plain("source 10 KB long", source="s" * 10_000)

    # -- dedup among hostile records
    twin = f.marker()  # exact twins: the same text but for case and spacing
    body = f"{TEXTS.body('twins')} \x00 \u2028 "
    f.doc("exact twin kept (smaller id)", {"id": "twin-a", "text": f"{body}{twin}", "source": "web"})
    f.doc("exact twin removed", {"id": "twin-b", "text": f"  {body.upper()}  {twin.upper()}", "source": "web"},
          "dedup:exact")
    for label, doc_id, outcome in (("near copy kept (smaller id)", "near-a", DOC),
                                   ("near copy removed", "near-b", "dedup:minhash")):
        m = f.marker()
        f.doc(label, {"id": doc_id, "text": f"\U0001F600 {TEXTS.body('near')} \x00 {m}", "source": "web"}, outcome)
    m = f.marker()
    f.doc("too large: a near copy of the next", {"id": "big-a", "text": TEXTS.text(m, "big") + " " + "w " * LIMIT,
                                                 "source": "web"}, "read:text_too_large")
    m = f.marker()
    f.doc("near copy of a too-large text: kept", {"id": "big-b", "text": TEXTS.text(m, "big"), "source": "web"})
    m = f.marker()
    f.add("exact twin with the smaller id, but invalid UTF-8 in a field",
          json.dumps({"id": "rtwin-a", "text": TEXTS.text(m, "rtwin"), "source": "web"}).encode()[:-1]
          + b', "k": "\xff"}', INVALID)
    f.doc("its twin: kept", {"id": "rtwin-b", "text": TEXTS.text(m.upper(), "rtwin"), "source": "web"})
    for doc_id, text in (("punct-1", "!!! ???"), ("punct-2", "... ,,, ;;;"), ("emoji-1", "\U0001F600\U0001F600"),
                         ("emoji-2", "\U0001F600\U0001F600\U0001F600"), ("short-1", "two words"),
                         ("short-2", "two other")):
        f.doc(f"no shingle or one short shingle: {text!r}", {"id": doc_id, "text": text, "source": "web"})
    m = f.marker()
    f.add("last line, no newline at the end", json.dumps({"id": f"id-{m}", "text": TEXTS.text(m)}).encode(), DOC,
          end=b"", text=TEXTS.text(m))


def nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def simple_lines(f: JsonlFile, n: int, end: bytes = b"\n", source: str = "web") -> None:
    for _ in range(n):
        m = f.marker()
        f.doc("plain", {"id": f"id-{m}", "text": TEXTS.text(m), "source": source}, end=end)


def zstd(data: bytes) -> bytes:
    """One zstd frame with a content checksum, as the ``zstd`` command writes it (Arrow's writer
    leaves the checksum out, and without one a damaged frame can decode to other bytes)."""
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(data)
    frame = bytearray(sink.getvalue().to_pybytes())
    frame[4] |= 0x04  # Frame_Header_Descriptor: Content_Checksum_flag
    frame += xxhash.xxh64(data).intdigest().to_bytes(8, "little")[:4]
    assert pa.input_stream(pa.BufferReader(bytes(frame)), compression="zstd").read() == data
    return bytes(frame)


def garbage_lines(f: JsonlFile, data: bytes) -> None:
    """``data`` (bytes that are not JSON lines) cut at ``\\n``: each non-blank line a rejected record."""
    for line in io.BytesIO(data).readlines():
        body = line[:-1] if line.endswith(b"\n") else line
        if line.strip():
            f.add("garbage line", body, ANY_READ, end=line[len(body):])
        else:
            f.blank("garbage: blank", body, end=line[len(body):])


def test_hostile_json_lines(ray_local: None, tmp_path: Path) -> None:
    """The hostile lines, byte-order marks, bare-CR and CRLF files, gzip members cut mid-line, zstd,
    an unknown extension, gzip bytes named .jsonl (garbage lines), and files with no record."""
    records: list[Record] = []

    def add(f: JsonlFile, data: bytes | None = None) -> None:
        (tmp_path / "in" / f.name).write_bytes(f.data() if data is None else data)
        records.extend(f.records)

    (tmp_path / "in").mkdir()
    lines = JsonlFile("a_lines.jsonl", 1)
    hostile_lines(lines, str(tmp_path / "in" / lines.name))
    add(lines)

    bom = JsonlFile("b_bom_first.jsonl", 2)
    m = bom.marker()
    bom.add("byte-order mark starting the file", b"\xef\xbb\xbf" + json.dumps({"id": f"id-{m}", "text": TEXTS.text(m)})
            .encode(), DOC, text=TEXTS.text(m))
    m = bom.marker()
    bom.add("byte-order mark starting line 2", b"\xef\xbb\xbf" + json.dumps({"id": f"id-{m}", "text": TEXTS.text(m)})
            .encode(), MALFORMED)
    add(bom)

    bom_blank = JsonlFile("c_bom_blank.jsonl", 3)
    bom_blank.blank("a byte-order mark alone on the first line", b"\xef\xbb\xbf")
    simple_lines(bom_blank, 2)
    add(bom_blank)

    cr = JsonlFile("d_cr_only.jsonl", 4)
    cr.add("three records ended by bare CR: one line", b"\r".join(
        json.dumps({"id": f"cr-{i}", "text": TEXTS.text(f"crmk{i}")}).encode() for i in range(3)) + b"\r",
        MALFORMED, end=b"")
    add(cr)

    crlf = JsonlFile("e_crlf.jsonl.gz", 5)
    simple_lines(crlf, 5, end=b"\r\n")
    crlf.blank("CRLF blank line", b"", end=b"\r\n")
    simple_lines(crlf, 5, end=b"\r\n")
    add(crlf, gzip.compress(crlf.data()))

    multi = JsonlFile("f_members.jsonl.gz", 6)
    simple_lines(multi, 12)
    data = multi.data()
    cut = data.index(b"\n", len(data) // 3) - 20  # members split inside a line; an empty member between
    add(multi, gzip.compress(data[:cut]) + gzip.compress(b"") + gzip.compress(data[cut:len(data) // 2])
        + gzip.compress(data[len(data) // 2:]))

    zst = JsonlFile("g_good.jsonl.zst", 7)
    simple_lines(zst, 6)
    add(zst, zstd(zst.data()))

    unknown = JsonlFile("h_plain.jsonl.txt", 8)  # an extension no codec claims: read as plain text
    simple_lines(unknown, 4)
    add(unknown)

    named_plain = JsonlFile("i_gzip_named_plain.jsonl", 9)
    source = JsonlFile("unused", 90)
    simple_lines(source, 30)
    compressed = gzip.compress(source.data())
    garbage_lines(named_plain, compressed)
    add(named_plain, compressed)

    for name, data in (("j_empty.jsonl", b""), ("k_empty.jsonl.gz", b""),
                       ("l_empty_member.jsonl.gz", gzip.compress(b"")), ("m_empty.jsonl.zst", zstd(b"")),
                       ("n_blank_only.jsonl", b"\n  \n\t\r\n\r\n")):
        (tmp_path / "in" / name).write_bytes(data)

    run_and_account(tmp_path, pipeline(tmp_path, [str(tmp_path / "in" / "*")]), records)


def test_deeply_nested_lines(ray_local: None, tmp_path: Path) -> None:
    """Nesting past Python's recursion limit (json.loads) and past what Arrow's JSON reader survives."""
    f = JsonlFile("deep.jsonl", 1)
    simple_lines(f, 3)
    for depth in (2_000, 20_000, 200_000):
        m = f.marker()
        f.add(f"list nested {depth} deep in a field", f'{{"id": "id-{m}", "text": "{TEXTS.text(m)}", "d": '.encode()
              + b"[" * depth + b"]" * depth + b"}", (DOC, ANY_READ), text=TEXTS.text(m))
        m = f.marker()
        f.add(f"object nested {depth} deep in a field", f'{{"id": "id-{m}", "text": "{TEXTS.text(m)}", "d": '.encode()
              + b'{"a": ' * depth + b"1" + b"}" * depth + b"}", (DOC, ANY_READ), text=TEXTS.text(m))
        f.add(f"text nested {depth} deep", b'{"id": "deep-text", "text": ' + b"[" * depth + b"]" * depth + b"}",
              ANY_READ)
        f.add(f"a bare list nested {depth} deep", b"[" * depth + b"]" * depth, ANY_READ)
        f.add(f"{depth} unclosed brackets", b"[" * depth, ANY_READ)
        simple_lines(f, 2)
    (tmp_path / f.name).write_bytes(f.data())
    run_and_account(tmp_path, pipeline(tmp_path, [str(tmp_path / f.name)]), f.records)


# -- damaged compressed files -------------------------------------------------------------------------


def damaged_files(tmp_path: Path) -> tuple[list[Record], tuple[str, ...]]:
    """A good file and damaged ones; each damaged file's records may be lost, not changed."""
    records: list[Record] = []
    good = JsonlFile("a_good.jsonl", 1)
    simple_lines(good, 6)
    (tmp_path / good.name).write_bytes(good.data())
    records += good.records

    damaged: list[str] = []
    for number, (name, damage) in enumerate((
            ("b_truncated_half.jsonl.gz", lambda d: gzip.compress(d)[:len(gzip.compress(d)) // 2]),
            ("c_truncated_trailer.jsonl.gz", lambda d: gzip.compress(d)[:-4]),
            ("d_corrupt_middle.jsonl.gz", lambda d: flip(gzip.compress(d))),
            ("e_member_then_garbage.jsonl.gz", lambda d: gzip.compress(d) + b"garbage after the member"),
            ("f_member_then_truncated_member.jsonl.gz", lambda d: gzip.compress(d[:len(d) // 2])
             + gzip.compress(d[len(d) // 2:])[:40]),
            ("g_truncated.jsonl.zst", lambda d: zstd(d)[:len(zstd(d)) // 2]),
            ("h_corrupt_middle.jsonl.zst", lambda d: flip(zstd(d))),
            ("i_plain_named.jsonl.gz", lambda d: d),
            ("j_zstd_named.jsonl.gz", lambda d: zstd(d)),
            ("k_plain_named.jsonl.bz2", lambda d: d)), start=2):
        f = JsonlFile(name, number)
        simple_lines(f, 40)
        (tmp_path / name).write_bytes(damage(f.data()))
        for record in f.records:
            record.allowed = frozenset({DOC, ABSENT})
        records += f.records
        damaged.append(name)
    return records, tuple(damaged)


def flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 64]) + data[middle + 64:]


def test_damaged_compressed_files_become_one_rejected_row_each(ray_local: None, tmp_path: Path) -> None:
    records, damaged = damaged_files(tmp_path)
    state, output = run_and_account(tmp_path, pipeline(tmp_path, [str(tmp_path / "*.jsonl*")]), records, damaged)
    # what a damaged file yields is all or nothing before the damage, in order: no record is skipped
    for name in damaged:
        kept = [r.line for r in records if r.file == name and r.outcomes == [DOC]]
        assert kept == list(range(len(kept))), (name, kept)


def test_damaged_file_with_on_corrupt_file_fail_stops_naming_it(ray_local: None, tmp_path: Path) -> None:
    good = JsonlFile("a_good.jsonl", 1)
    simple_lines(good, 4)
    (tmp_path / good.name).write_bytes(good.data())
    bad = JsonlFile("b_truncated.jsonl.gz", 2)
    simple_lines(bad, 40)
    (tmp_path / bad.name).write_bytes(gzip.compress(bad.data())[:300])
    with pytest.raises(Exception) as caught:
        run_config(tmp_path, pipeline(tmp_path, [str(tmp_path / "*.jsonl*")], on_corrupt_file="fail"))
    assert_stopped_naming(caught.value, bad.name)

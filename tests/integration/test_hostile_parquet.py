"""Hostile and messy input never stops a run and never corrupts a result (issue 21): Parquet files,
repeated ids, validation.

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

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators.io.records import derived_id
from tests.integration.conftest import run_config
from tests.support.hostile_inputs import ABSENT, ANY_READ, DOC, JsonlFile, ParquetFile, Record
from tests.support.hostile_run import (DUP, LIMIT, TEXTS, assert_stopped_naming, check_accounting, pipeline,
                                       run_and_account)

pytestmark = pytest.mark.integration

# -- Parquet ------------------------------------------------------------------------------------------

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("lang", pa.string())])


def parquet_row(f: ParquetFile, label: str, allowed: str = DOC, text: str | None = None, **row: Any) -> Record:
    m = f.marker()
    text = TEXTS.text(m) if text is None else text
    return f.add(label, {"id": f"id-{m}", "text": text, "source": "web", "lang": "en", **row}, allowed, text=text,
                 id=row.get("id", f"id-{m}") if isinstance(row.get("id", f"id-{m}"), str) else None)


def test_hostile_parquet_rows(ray_local: None, tmp_path: Path) -> None:
    """Text columns missing or of another type, odd ids, zero rows; one pass-through schema."""
    records: list[Record] = []

    good = ParquetFile("a_good.parquet", 1)
    for _ in range(6):
        parquet_row(good, "plain")
    derived = parquet_row(good, "id null: derived", id=None)
    derived.id = derived_id(str(tmp_path / good.name), derived.line)
    parquet_row(good, "id empty", id="")
    parquet_row(good, "id 100 KB long", id="L" * 100_000)
    parquet_row(good, "id 'p7', first", id="p7")
    parquet_row(good, "id 'p7' again", DUP, id="p7")
    parquet_row(good, "id '7' (the int 7 comes later)", id="7")
    parquet_row(good, "text empty", "read:empty_text", text="")
    parquet_row(good, "text Unicode spaces", "read:empty_text", text="\u3000\u2003")
    parquet_row(good, "text null", "read:missing_text", text=None)
    good.rows[-1]["text"] = None
    parquet_row(good, "text over the limit", "read:text_too_large", text="x " * LIMIT)
    parquet_row(good, "text with NUL and control characters", text=f"{TEXTS.text(good.marker())} \x00\x01\x1f")
    parquet_row(good, "text with an emoji",
                text=f"{TEXTS.text(good.marker())} \U0001F600")
    good.write(tmp_path, SCHEMA)
    records += good.records

    def typed(name: str, number: int, text_type: pa.DataType, allowed: str, values: list[Any] | None = None,
              ids: list[Any] | None = None, id_type: pa.DataType = pa.string()) -> ParquetFile:
        """A file whose text (or id) column has another type; texts default to marked ones."""
        f = ParquetFile(name, number)
        for i in range(len(values or ids or [0, 0])):
            m = f.marker()
            text = values[i] if values else TEXTS.text(m)
            row_id = ids[i] if ids else f"id-{m}"
            f.add(f"{text_type} text, {id_type} id, row {i}",
                  {"id": row_id, "text": text, "source": "web", "lang": "en"}, allowed,
                  text=text if isinstance(text, str) else None, id=row_id if isinstance(row_id, str) else None)
        f.write(tmp_path, pa.schema([("id", id_type), ("text", text_type), ("source", pa.string()),
                                     ("lang", pa.string())]))
        records.extend(f.records)
        return f

    typed("b_large_string.parquet", 2, pa.large_string(), DOC)
    typed("c_int_text.parquet", 3, pa.int64(), "read:non_string_text", values=[1, 2])
    typed("d_list_text.parquet", 4, pa.list_(pa.string()), "read:non_string_text", values=[["a"], ["b"]])
    typed("e_null_type_text.parquet", 5, pa.null(), "read:missing_text", values=[None, None])
    typed("f_dictionary_text.parquet", 6, pa.dictionary(pa.int32(), pa.string()), DOC)
    typed("g_string_view_text.parquet", 7, pa.string_view(), DOC)
    typed("h_binary_text.parquet", 8, pa.binary(), DOC)
    ints = typed("i_int_ids.parquet", 9, pa.string(), DOC, ids=[7, 8, None], id_type=pa.int64())
    ints.records[0].allowed = frozenset({DUP})  # 7 repeats a_good's "7"
    ints.records[1].id = "8"
    ints.records[2].id = derived_id(str(tmp_path / ints.name), 2)
    typed("j_float_ids.parquet", 10, pa.string(), DOC, ids=[1.5], id_type=pa.float64())

    missing = ParquetFile("k_no_text_column.parquet", 11)
    for i in range(3):
        missing.add("no text column", {"id": f"nt-{i}", "body": "wrong column", "source": "web", "lang": "en"},
                    "read:missing_text")
    missing.write(tmp_path, pa.schema([("id", pa.string()), ("body", pa.string()), ("source", pa.string()),
                                       ("lang", pa.string())]))
    records += missing.records

    ParquetFile("l_zero_rows.parquet", 12).write(tmp_path, SCHEMA)

    run_and_account(tmp_path, pipeline(tmp_path, [str(tmp_path / "*.parquet")], "parquet"), records)


def test_parquet_schemas_that_differ_between_files(ray_local: None, tmp_path: Path) -> None:
    """A pass-through column typed differently, missing, or extra in some files."""
    records: list[Record] = []
    variants = [
        ("a_lang_string.parquet", pa.schema([("id", pa.string()), ("text", pa.string()), ("lang", pa.string())]),
         {"lang": "en"}),
        ("b_lang_int.parquet", pa.schema([("id", pa.string()), ("text", pa.string()), ("lang", pa.int64())]),
         {"lang": 3}),
        ("c_no_lang.parquet", pa.schema([("id", pa.string()), ("text", pa.string())]), {}),
        ("d_lang_list_and_extra.parquet", pa.schema([("id", pa.string()), ("text", pa.string()),
                                                     ("lang", pa.list_(pa.string())), ("score", pa.float64())]),
         {"lang": ["en", "fr"], "score": 0.5}),
        ("e_text_large_id_int.parquet", pa.schema([("id", pa.int64()), ("text", pa.large_string())]), {}),
    ]
    for number, (name, schema, extra) in enumerate(variants, start=1):
        f = ParquetFile(name, number)
        for i in range(4):
            m = f.marker()
            row_id: Any = number * 100 + i if schema.field("id").type == pa.int64() else f"id-{m}"
            f.add("plain", {"id": row_id, "text": TEXTS.text(m), **extra}, DOC, text=TEXTS.text(m), id=str(row_id))
        m = f.marker()  # a near copy across files: the smaller id stays
        f.add("near copy across files", {"id": f"near-{number}" if schema.field("id").type != pa.int64() else 1,
                                         "text": TEXTS.text(m, "across"), **extra},
              DOC if number == 5 else "dedup:minhash", text=TEXTS.text(m, "across"))
        f.write(tmp_path, schema)
        records += f.records
    _, output = run_and_account(tmp_path, pipeline(tmp_path, [str(tmp_path / "*.parquet")], "parquet"), records)
    # every file's values pass through, as text where the files' types have no common type
    rows = {r["id"]: r for r in output.to_pylist()}
    assert [rows[f"id-mk{n}l0"]["lang"] for n in (1, 2, 3, 4)] == ["en", "3", None, '["en", "fr"]']
    assert [rows[f"id-mk{n}l0"]["score"] for n in (1, 2, 3, 4)] == [None, None, None, 0.5]
    assert output.schema.field("lang").type == pa.string() and output.schema.field("score").type == pa.float64()


def single_parquet(tmp_path: Path, case: str) -> tuple[str, list[Record]]:
    """One file whose read may fairly stop the run (then naming it) or complete with every row accounted."""
    name = f"{case}.parquet"
    path = tmp_path / name
    if case == "zero_bytes":
        path.write_bytes(b"")
        return name, []
    if case == "not_parquet":
        path.write_bytes(b'{"id": "a", "text": "a JSON line in a .parquet file"}\n' * 20)
        return name, []
    f = ParquetFile(name, 1)
    for i in range(40 if case == "corrupt_page" else 4):
        m = f.marker()
        f.add("row", {"id": f"id-{m}", "text": TEXTS.text(m)}, DOC, text=TEXTS.text(m))
    if case == "corrupt_page":  # the footer intact, a page damaged; its CRC (written) tells
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(f.rows), sink, compression="snappy", write_page_checksum=True)
        data = sink.getvalue()
        third = len(data) // 3
        damaged = data[:third] + bytes(b ^ 0x5A for b in data[third:third + 64]) + data[third + 64:]
        with pytest.raises(OSError):  # the damage is detectable: Arrow's reader sees it when asked to
            pq.ParquetFile(pa.BufferReader(damaged), page_checksum_verification=True).read()
        path.write_bytes(damaged)
        for r in f.records:
            r.allowed = frozenset({DOC, ABSENT})
        return name, f.records
    if case == "truncated":
        table = pa.Table.from_pylist(f.rows)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        path.write_bytes(sink.getvalue()[: len(sink.getvalue()) // 2])
        for r in f.records:
            r.allowed = frozenset({ABSENT})
        return name, f.records
    if case == "binary_ids_invalid_utf8":
        ids = [b"\xff\xfe", b"ok-1", b"\xc0\xaf", b"ok-3"]
        for r, i in zip(f.records, ids):
            r.allowed = frozenset({DOC}) if i.startswith(b"ok") else frozenset({ANY_READ})
        pq.write_table(pa.table({"id": pa.array(ids, pa.binary()), "text": [r["text"] for r in f.rows]}), path)
        return name, f.records
    if case == "list_ids":
        pq.write_table(pa.table({"id": [[i] for i in range(4)], "text": [r["text"] for r in f.rows]}), path)
        for r in f.records:
            r.allowed = frozenset({DOC, ANY_READ})
        return name, f.records
    if case == "drop_reason_column":  # e.g. a tamis rejected/ file read back as input
        pq.write_table(pa.table({"id": [r["id"] for r in f.rows], "text": [r["text"] for r in f.rows],
                                 "drop_reason": [None, "dedup:exact", None, "quality:short"],
                                 "_tamis_file": ["x"] * 4}), path)
        return name, f.records
    raise ValueError(case)


@pytest.mark.parametrize("case", ["zero_bytes", "not_parquet", "truncated", "corrupt_page", "binary_ids_invalid_utf8",
                                  "list_ids", "drop_reason_column"])
def test_parquet_file_that_may_stop_the_run(ray_local: None, tmp_path: Path, case: str) -> None:
    run_beside_a_good_file(tmp_path, case, "a_good.parquet")


@pytest.mark.parametrize("case", ["zero_bytes", "truncated"])
def test_a_damaged_first_file_is_one_rejected_row(ray_local: None, tmp_path: Path, case: str) -> None:
    # the other files still read: no file depends on reading the first one
    run_beside_a_good_file(tmp_path, case, "z_good.parquet", may_stop=False)


def run_beside_a_good_file(tmp_path: Path, case: str, good_name: str, may_stop: bool = True) -> None:
    name, records = single_parquet(tmp_path, case)
    good = ParquetFile(good_name, 2)
    for _ in range(3):
        parquet_row(good, "plain")
    good.write(tmp_path, SCHEMA)
    raw = pipeline(tmp_path, [str(tmp_path / "*.parquet")], "parquet")
    try:
        pipeline_, state = run_config(tmp_path, raw)
    except Exception as err:  # noqa: BLE001 - the test is about which error comes out
        if not may_stop:
            raise
        assert_stopped_naming(err, name)
        return
    corrupt = (name,) if case in ("zero_bytes", "not_parquet", "truncated", "corrupt_page") else ()
    check_accounting(tmp_path, pipeline_, state, records + good.records, corrupt)


# -- repeated ids and dedup ---------------------------------------------------------------------------


def test_repeated_ids_are_quarantined_and_dedup_stays_right(ray_local: None, tmp_path: Path) -> None:
    """ids ``x, x, y, x`` (x1~x2 and y~x4 near copies) and friends, within a file and across files."""
    a, b = JsonlFile("a.jsonl", 1), JsonlFile("b.jsonl", 2)

    def doc(f: JsonlFile, label: str, doc_id: Any, key: str, allowed: str) -> Record:
        m = f.marker()
        return f.doc(label, {"id": doc_id, "text": TEXTS.text(m, key), "source": "web"}, allowed,
                     check_id=isinstance(doc_id, str))

    doc(a, "x #1 (pair P)", "x", "P", DOC)  # its partner x #2 is quarantined: x #1 stays
    doc(a, "x #2 (pair P)", "x", "P", DUP)
    doc(a, "y (pair Q)", "y", "Q", DOC)  # its partner x #4 is quarantined: y stays
    doc(a, "x #4 (pair Q)", "x", "Q", DUP)
    # k ~ b ~ a#2 near copies; a#2 repeats id 'a' and has the smallest id: were it seen by dedup,
    # it would be the keeper and remove both k and b
    doc(a, "k (cluster R)", "k", "R", "dedup:minhash")
    doc(a, "b (cluster R, smallest id left)", "b", "R", DOC)
    doc(a, "a #1 (unrelated text)", "a", "S", DOC)
    doc(a, "a #2 (cluster R, quarantined)", "a", "R", DUP)
    twin = a.marker()  # exact twins sharing an id: the second is a repeated id, not an exact duplicate
    a.doc("e #1", {"id": "e", "text": TEXTS.text(twin, "E"), "source": "web"}, DOC)
    a.doc("e #2, the same text but for case", {"id": "e", "text": TEXTS.text(twin.upper(), "E"), "source": "web"},
          DUP, check_id=False)
    doc(a, "n1 (pair T, distinct ids)", "n1", "T", DOC)
    doc(a, "n2 (pair T, distinct ids)", "n2", "T", "dedup:minhash")
    doc(a, "'7' as a string", "7", "U", DOC)
    doc(a, "z in a", "z", "V", DOC)
    # exact_dedup keeps the smallest id of a text: q #2's exact twin r must not be removed for a
    # q #2 that is then quarantined (q #1 comes first), or text G has no survivor
    doc(a, "q #1 (text F)", "q", "F", DOC)
    twin = a.marker()
    a.doc("q #2 (text G, quarantined)", {"id": "q", "text": TEXTS.text(twin, "G"), "source": "web"}, DUP,
          check_id=False)
    a.doc("r (text G, exact twin of q #2)", {"id": "r", "text": TEXTS.text(twin.upper(), "G"), "source": "web"}, DOC)

    doc(b, "y again, in b", "y", "W", DUP)
    doc(b, "7 as a number, in b", 7, "X", DUP)
    doc(b, "z again, in b: a near copy of z in a", "z", "V", DUP)
    doc(b, "x again, in b", "x", "Y", DUP)
    doc(b, "c (pair Z, across files from d)", "c", "Z", DOC)
    for f in (a, b):
        (tmp_path / f.name).write_bytes(f.data())
    d = JsonlFile("c.jsonl", 3)
    doc(d, "d (pair Z)", "d", "Z", "dedup:minhash")
    (tmp_path / d.name).write_bytes(d.data())

    _, output = run_and_account(tmp_path, pipeline(tmp_path, [str(tmp_path / "*.jsonl")]),
                                a.records + b.records + d.records)
    assert sorted(output["id"].to_pylist()) == ["7", "a", "b", "c", "e", "n1", "q", "r", "x", "y", "z"]


# -- validation ---------------------------------------------------------------------------------------


def test_inputs_that_stop_at_validation(tmp_path: Path) -> None:
    from jobs.spec import SpecError
    from jobs.pipeline_load import load_pipeline
    from tests.conftest import write_config

    raw = pipeline(tmp_path, [str(tmp_path / "nothing-here-*.jsonl")])
    with pytest.raises(SpecError) as caught:
        load_pipeline(str(write_config(tmp_path / "c.yaml", raw)))
    assert "nothing-here-*.jsonl" in str(caught.value)

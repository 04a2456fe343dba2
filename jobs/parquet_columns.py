"""One set of pass-through columns for every Parquet input file of a run.

Every checkpoint file of a stage must share one schema (a group stage concatenates them),
but Parquet files of one corpus often differ in their other columns: one file has a
column the others lack, or types it differently (``int32`` here, ``int64`` there; a
number here, a string or a list there). Before the read, the driver reads every file's
footer and takes the union of their pass-through columns, in first-seen order, each with
one type that holds every file's values:

- the types Arrow's permissive promotion unifies (``int32`` and ``int64``, ``string`` and
  ``large_string``, ``null`` and anything) become that type;
- types no common type holds (``int64`` and ``string``, ``string`` and ``list<string>``)
  make the column text: strings as they are, other values as Arrow casts them to text
  (``3`` -> ``"3"``) or, where Arrow cannot (lists, structs), as JSON.

Each file's table is then conformed to that schema: a column it lacks is null, another
type is cast. Nothing a file holds is dropped and no file stops the run for its columns.
Files whose footer cannot be read (their own read reports them) or that lack the text
column (all their rows are rejected) do not take part.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.store import S3Options, filesystem_for
from operators.io.records import FieldMapping

FOOTER_THREADS = 16
"""Footers read at once by the driver: each is one small ranged GET on S3."""


@dataclass(frozen=True)
class PassThrough:
    """The pass-through columns of a run's Parquet input: what every file is conformed to.

    Attributes:
        schema: The union of the files' columns other than text, id and source.
        as_text: Columns whose types differ beyond what one type holds: text in every file.
    """

    schema: pa.Schema
    as_text: frozenset[str] = frozenset()


def pass_through_columns(uris: list[str], fields: FieldMapping, s3: S3Options) -> PassThrough:
    """The :class:`PassThrough` of ``uris`` (Parquet files), from their footers."""
    with ThreadPoolExecutor(max_workers=FOOTER_THREADS) as pool:
        schemas = list(pool.map(lambda uri: _footer_schema(uri, s3), uris))
    mapped = {fields.text_field, fields.id_field, fields.source_field}
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        if schema is None or schema.get_field_index(fields.text_field) < 0:
            continue
        for field in schema:
            if field.name not in mapped:
                types.setdefault(field.name, []).append(field.type)
    columns, as_text = [], set()
    for name, seen in types.items():
        unified = _unified_type(name, seen)
        if unified is None:
            unified = pa.string()
            as_text.add(name)
        columns.append(pa.field(name, unified))
    return PassThrough(pa.schema(columns), frozenset(as_text))


def conform_columns(table: pa.Table, columns: PassThrough, fields: FieldMapping, uri: str) -> pa.Table:
    """``table`` with the mapped columns as they are and the pass-through ones as ``columns``
    has them: the same names in the same order, a column it lacks as nulls, others cast.

    Raises:
        ValueError: A value does not fit the unified type (an ``int64`` past a ``double``'s
            range is not among them: that cast loses precision, as Arrow's promotion does).
    """
    mapped = {fields.text_field, fields.id_field, fields.source_field}
    out = {n: table[n] for n in table.column_names if n in mapped}
    for field in columns.schema:
        if field.name not in table.column_names:
            out[field.name] = pa.nulls(table.num_rows, field.type)
        elif table[field.name].type == field.type:
            out[field.name] = table[field.name]
        elif field.name in columns.as_text:
            out[field.name] = _as_text(table[field.name])
        else:
            try:
                out[field.name] = table[field.name].cast(field.type, safe=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise ValueError(f"input file {uri}: column {field.name} is {table[field.name].type} and does not "
                                 f"cast to {field.type}, the type it has across the input files ({err})") from None
    return pa.table(out)


def _footer_schema(uri: str, s3: S3Options) -> pa.Schema | None:
    fs, path = filesystem_for(uri, s3)
    try:
        return pq.read_schema(path, filesystem=fs)
    except (OSError, pa.ArrowInvalid):  # not Parquet, cut short, gone: that file's read reports it
        return None


def _unified_type(name: str, seen: list[pa.DataType]) -> pa.DataType | None:
    """One type holding every type in ``seen`` (Arrow's permissive promotion), or None."""
    try:
        return pa.unify_schemas([pa.schema([(name, t)]) for t in seen], promote_options="permissive").field(name).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Strings as they are; other values as Arrow writes them as text, or as JSON."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array([pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                                           for v in column.to_pylist()], pa.string())], pa.string())

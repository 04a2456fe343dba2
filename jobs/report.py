"""Plain-text tables for `tamis status`, the end-of-run summary and `tamis operators`."""

from __future__ import annotations

import inspect
import time
import typing
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from operators import registry
from operators.base import Composite


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned text, right-aligned numbers, columns padded to fit."""
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], (int, float)) or r[i] in (None, "") for r in rows) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 or value == 0 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_status(state: dict[str, Any]) -> str:
    """Each stage with its status and progress, then the run's status and any error."""
    rows = []
    for s in state.get("stages", []):
        waves = f"{s['waves_done']}/{s['waves_total']}" if s.get("waves_total") else ""
        rows.append([s["name"], s["kind"], s["status"], waves, s.get("rows_in"), s.get("rows_out"),
                     sum((s.get("dropped") or {}).values()) or None, s.get("seconds")])
    out = [f"run {state.get('run_id')} ({state.get('pipeline')}): {state.get('status')}"
           f" - updated {_ago(state.get('updated_at'))}"]
    if seen := state.get("input_files"):  # input.incremental
        out.append(f"input state {seen.get('state')} (version {seen.get('version')}): {seen.get('new', 0):,} new, "
                   f"{seen.get('changed', 0):,} changed, {seen.get('unchanged', 0):,} unchanged file(s) skipped")
    if state.get("nothing_new"):
        out.append("nothing new to read; no output written")
    else:
        out.append(table(["stage", "kind", "status", "waves", "rows in", "rows out", "dropped", "seconds"], rows))
    details, group_tables = [], []
    for s in state.get("stages", []):
        metrics, groups = split_group_metrics(s.get("metrics") or {})
        facts = {**(s.get("info") or {}), **metrics}
        if facts:
            details.append(f"  {s['name']}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in facts.items()))
        if groups:
            group_tables.append(f"\n{s['name']} per group:\n{groups}")
    if details:
        out.append("\n" + "\n".join(details))
    out += group_tables
    for s in state.get("stages", []):
        if s.get("error"):
            out.append(f"\n{s['name']} failed:\n{s['error'].rstrip()}")
    if state.get("error") and not any(s.get("error") for s in state.get("stages", [])):
        out.append(f"\nerror: {state['error']}")
    if state.get("output"):
        out.append(f"\noutput: {state['output']['uri']}\nmanifest: {state['output']['manifest']}")
    return "\n".join(out)


def split_group_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Metrics named ``group.<group>.<figure>`` (a mix's plan and sample) as a table with a
    row per group; the others as they are."""
    rest: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        if key.startswith("group.") and key.count(".") >= 2:
            group, figure = key[len("group."):].rsplit(".", 1)
            groups.setdefault(group, {})[figure] = value
        else:
            rest[key] = value
    if not groups:
        return rest, None
    figures = list(dict.fromkeys(f for g in groups.values() for f in g))
    rows = [[g or "(null)", *[_whole(groups[g].get(f)) for f in figures]] for g in sorted(groups)]
    return rest, table(["group", *[f.replace("_", " ") for f in figures]], rows)


def _whole(value: Any) -> Any:
    """A float count as an int (metrics are floats), a fraction as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) >= 1 else value


def render_summary(state: dict[str, Any]) -> str:
    """Documents in and out, removals per stage and reason, wall time, where things are."""
    if state.get("nothing_new"):  # input.incremental found no new or changed file
        seen = state.get("input_files") or {}
        return (f"nothing new: all {seen.get('unchanged', 0):,} input file(s) were read by earlier runs (input "
                f"state {seen.get('state')}, version {seen.get('version')}); no output written")
    stages = state["stages"]
    rows = []
    for s in stages:
        cached = " (cached)" if s["status"] == "cached" else ""
        reasons = sorted((s.get("dropped") or {}).items())
        if not reasons:
            rows.append([s["name"] + cached, s.get("rows_in"), s.get("rows_out"), "", None])
        for n, (reason, count) in enumerate(reasons):
            rows.append([s["name"] + cached if n == 0 else "", s.get("rows_in") if n == 0 else None,
                         s.get("rows_out") if n == 0 else None, reason, count])
    out = state.get("output") or {}
    docs_in = stages[0].get("rows_in") if stages else 0
    if state.get("status") == "stopped" and state.get("stop_requested"):  # tamis stop: no output
        tail = [f"documents in: {docs_in or 0:,}   wall time: {state.get('wall_seconds', 0):.1f}s",
                "stopped at a wave boundary as asked (tamis stop); the same command goes on from there"]
    elif state.get("status") == "stopped":  # --until: no output yet
        docs_out = stages[-1].get("rows_out") if stages else 0
        tail = [f"documents in: {docs_in or 0:,}   after {state.get('stopped_after')}: {docs_out or 0:,}   "
                f"wall time: {state.get('wall_seconds', 0):.1f}s",
                f"stopped after {state.get('stopped_after')} as asked (--until); the same command without --until "
                "goes on from there"]
    else:
        tail = [f"documents in: {docs_in:,}   out: {out.get('rows', 0):,}   wall time: {state.get('wall_seconds', 0):.1f}s",
                f"output:   {out.get('uri')}",
                f"manifest: {out.get('manifest')}"]
    return "\n".join([table(["stage", "docs in", "docs out", "removed for", "removed"], rows), "", *tail])


def _ago(t: float | None) -> str:
    if not t:
        return "never"
    return f"{time.time() - t:.0f}s ago"


def render_operators() -> str:
    rows = []
    for name in registry.names():
        cls = registry.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows.append([name, cls.kind, getattr(cls, "version", ""), doc])
    return table(["operator", "kind", "version", "what it does"], rows)


def render_operator(name: str) -> str:
    cls = registry.get(name)
    lines = [f"{name} ({cls.kind})", "", inspect.getdoc(cls) or "", ""]
    if isinstance(cls, type) and issubclass(cls, Composite):
        try:
            config = cls.Config()
        except ValidationError:  # required fields (quantiles' columns, mix's budget): the parts
            config = cls.Config.model_construct()  # do not depend on them, the defaults suffice
        parts = cls.parts(config)
        lines.append("runs as: " + " -> ".join(f"{name}.{p.suffix} ({p.operator.kind})" for p in parts))
    else:
        lines.append(f"reads: {', '.join(cls.reads) or '(depends on config)'}")
        lines.append(f"writes: {', '.join(cls.writes) or '(depends on config)'}")
    lines.append("")
    fields = cls.Config.model_fields
    if not fields:
        lines.append("config: no parameters")
    else:
        rows = [[f, _type_name(info), _default(info), info.description or ""] for f, info in fields.items()]
        lines.append(table(["parameter", "type", "default", "description"], rows))
    return "\n".join(lines)


def _type_name(info: FieldInfo) -> str:
    ann = info.annotation
    if typing.get_origin(ann) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(ann))
    return getattr(ann, "__name__", None) if isinstance(ann, type) else str(ann).replace("typing.", "")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value = info.get_default(call_default_factory=True)
    return repr(value)

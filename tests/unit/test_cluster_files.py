"""cluster/: every file parses and agrees with the code it deploys."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.cli import build_parser
from operators.embedding.embed import EmbedEncode

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
PYPROJECT = CLUSTER.parent / "pyproject.toml"
KUBERAY = sorted((CLUSTER / "kuberay").glob("*.yaml"))


def pinned_ray() -> str:
    match = re.search(r'"ray\[[a-z,]+\]==([0-9.]+)"', PYPROJECT.read_text())
    assert match, "pyproject.toml pins ray[...]==X"
    return match.group(1)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def cluster_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The RayCluster specs in a KubeRay resource (its own, or a job's cluster to create)."""
    spec = doc["spec"]
    if doc["kind"] == "RayCluster":
        return [spec]
    job = spec.get("jobTemplate", spec)
    return [job["rayClusterSpec"]] if "rayClusterSpec" in job else []


def entrypoints() -> list[tuple[str, str]]:
    out = [(p.name, (d["spec"].get("jobTemplate") or d["spec"])["entrypoint"])
           for p in KUBERAY for d in documents(p) if d["kind"] in ("RayJob", "RayCronJob")]
    readme = (CLUSTER / "README.md").read_text()
    out += [("README.md", line) for line in re.findall(r"^\S+ \S+ \S+ \S+ \S+ (.*?) >>", readme, re.M)]
    return out


def test_every_file_parses() -> None:
    assert {p.name for p in KUBERAY} == {"raycluster.yaml", "rayjob.yaml", "raycronjob.yaml"}
    for path in [CLUSTER / "aws.yaml", *KUBERAY]:
        assert documents(path), path


@pytest.mark.parametrize(("where", "entrypoint"), entrypoints())
def test_entrypoints_are_tamis_commands_the_cli_accepts(where: str, entrypoint: str) -> None:
    # $(date -u +%F) is expanded by the shell that runs the entrypoint
    words = shlex.split(re.sub(r"\$\(date -u \+\\?%F\)", "2026-12-05", entrypoint))
    assert Path(words[0]).name == "tamis", where
    args = build_parser().parse_args(words[1:])
    # a run id of its own each night: given, or the date's (--nightly)
    assert args.command == "run" and args.config.startswith("s3://") and (args.run_id or args.nightly), where


def test_ray_versions_are_the_pinned_one() -> None:
    ray = pinned_ray()
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert re.search(rf"^ARG BASE=rayproject/ray:{re.escape(ray)}-py", dockerfile, re.M)
    assert f"ray.__version__ == '{ray}'" in dockerfile
    specs = [s for p in KUBERAY for d in documents(p) for s in cluster_specs(d)]
    assert len(specs) == 2  # the standing cluster and the nightly one
    for spec in specs:
        assert spec["rayVersion"] == ray
    # the launcher installs this checkout (pyproject's pins) on every node
    aws = documents(CLUSTER / "aws.yaml")[0]
    assert any("pip install" in c and "-e /home/ubuntu/tamis" in c for c in aws["setup_commands"])
    assert "/home/ubuntu/tamis" in aws["file_mounts"]


def test_every_cluster_has_a_gpu_group_for_the_encode_actors() -> None:
    assert EmbedEncode.resources.gpus_when_available > 0  # embed.encode takes GPUs where there are some
    aws = documents(CLUSTER / "aws.yaml")[0]
    types = aws["available_node_types"]
    assert aws["head_node_type"] in types
    assert any(t["resources"].get("GPU", 0) >= 1 and t["max_workers"] > 0 for t in types.values())
    for spec in [s for p in KUBERAY for d in documents(p) for s in cluster_specs(d)]:
        gpu = [g for g in spec["workerGroupSpecs"]
               if any("nvidia.com/gpu" in c["resources"]["limits"] for c in g["template"]["spec"]["containers"])]
        assert gpu and all(c["image"].endswith("-gpu") for g in gpu for c in g["template"]["spec"]["containers"])
        assert spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"].endswith("-cpu")


def test_the_rayjob_runs_on_the_standing_cluster() -> None:
    standing = documents(CLUSTER / "kuberay" / "raycluster.yaml")[0]["metadata"]["name"]
    job = documents(CLUSTER / "kuberay" / "rayjob.yaml")[0]
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == standing
    cron = documents(CLUSTER / "kuberay" / "raycronjob.yaml")[0]
    assert len(cron["spec"]["schedule"].split()) == 5

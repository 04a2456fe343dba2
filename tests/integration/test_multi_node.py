"""A real two-node Ray on this machine (ray.cluster_utils.Cluster): local paths are refused
unless declared shared, and the demo then runs to the same output as on one node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import demo_config, write_config
from tests.integration.test_resume import finish, output_table, tamis
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration


@pytest.fixture
def two_nodes() -> Iterator[str]:
    """A head and one worker node, one CPU each; yields the cluster's address."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def test_local_paths_are_refused_on_two_nodes_unless_shared(two_nodes: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path / "demo.yaml", demo_config(store=str(store)))
    refused = tamis("run", str(config), "--address", two_nodes, "--run-id", "two")
    out, _ = refused.communicate(timeout=300)
    text = out.decode(errors="replace")
    assert refused.returncode == 2, text
    assert "the cluster has 2 nodes" in text and f"store {store}" in text and "shared_filesystem" in text
    assert not (store / "runs").exists()  # nothing started

    # on one machine every node sees the same directories: declared shared, the run goes on
    finish(tamis("run", str(config), "--address", two_nodes, "--run-id", "two",
                 "--set", "store_options.shared_filesystem=true"), timeout=600)
    reference = tmp_path / "reference"
    run_serially(write_config(tmp_path / "ref.yaml", demo_config(store=str(reference))), "two")
    two, one = output_table(store, "two"), output_table(reference, "two")
    assert two.num_rows > 0 and two.sort_by("id").equals(one.sort_by("id"))

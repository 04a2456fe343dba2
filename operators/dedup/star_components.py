"""Connected components by alternating large-star and small-star rounds, for edge lists
larger than one worker's memory.

Kiveris, Lattanzi, Mirrokni, Rastogi and Vassilvitskii, "Connected Components in MapReduce
and Beyond" (SoCC 2014). Edges are kept oriented from the larger id to the smaller
(``src > dst``), each node's label being its id. With Γ(u) the neighbours of u:

* large-star: for each u, m = min(Γ(u) ∪ {u}); every neighbour v > u is linked to m.
* small-star: for each u, with N = {v ∈ Γ(u): v < u} and m = min(N); every v ∈ N ∪ {u},
  v ≠ m, is linked to m.

Both keep connectivity and converge in O(log² n) rounds to a forest of stars, each centered
on its component's smallest id. A large-star round whose input is such a forest changes
nothing, and it can tell locally: every node is either a center (all neighbours larger) or
a leaf (exactly one neighbour, smaller); it counts the nodes that are neither, and a count of
0 stops the rounds. Two finishing steps turn the stars into the same component table
:class:`operators.dedup.lsh.LshComponents` builds on one worker: size per center, then the
table grouped by document file so jobs/ writes it split per file.

Every step works on whole groups, vectorized: ids are ranked within the call, rows sorted by
(node, neighbour), and each run of equal nodes handled with array operations.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import FILE_COLUMN, GroupOperator
from operators.dedup.minhash_config import CANDIDATES, COMPONENT, EDGE_SCHEMA, MinhashDedupConfig
from operators.registry import register
from operators.runs import run_heads, run_starts

NODE, NEIGHBOUR, NODE_FILE, NEIGHBOUR_FILE = "_star_node", "_star_nbr", "_star_node_file", "_star_nbr_file"
COMPONENT_SCHEMA = pa.schema([("id", pa.string()), (FILE_COLUMN, pa.string()), (COMPONENT, pa.string()),
                              (CANDIDATES, pa.int64())])


def _adjacency(node: pa.Array, neighbour: pa.Array, node_file: pa.Array, neighbour_file: pa.Array) -> pa.Table:
    return pa.table({NODE: node, NEIGHBOUR: neighbour, NODE_FILE: node_file, NEIGHBOUR_FILE: neighbour_file})


def _sorted_distinct(table: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Rows sorted by (node, neighbour) without repeats or self-loops, and both ranks.

    A rank is an id's position in the sorted distinct ids of this call, so comparing ranks
    compares ids (string order, the order the single-worker path labels components by).
    """
    table = table.filter(pc.not_equal(table[NODE], table[NEIGHBOUR]))
    ids = pa.concat_arrays([table[NODE].combine_chunks(), table[NEIGHBOUR].combine_chunks()])
    distinct = pc.unique(ids)
    distinct = distinct.take(pc.sort_indices(distinct))
    node = pc.index_in(table[NODE], value_set=distinct).to_numpy(zero_copy_only=False)
    neighbour = pc.index_in(table[NEIGHBOUR], value_set=distinct).to_numpy(zero_copy_only=False)
    order = np.lexsort((neighbour, node))
    node, neighbour = node[order], neighbour[order]
    keep = run_starts(node, neighbour)
    return table.take(pa.array(order[keep])), node[keep], neighbour[keep]


def _edges(src: pa.Array, dst: pa.Array, src_file: pa.Array, dst_file: pa.Array) -> pa.Table:
    edges = pa.table({"src": src, "dst": dst, "src_file": src_file, "dst_file": dst_file}, schema=EDGE_SCHEMA)
    # the same edge is often produced by several nodes of one call
    return edges.group_by(EDGE_SCHEMA.names, use_threads=False).aggregate([]).select(EDGE_SCHEMA.names)


class _StarStep(GroupOperator[MinhashDedupConfig]):
    """Common declarations of the rounds' steps: they read and write the edge artifact."""

    version = 1
    Config = MinhashDedupConfig
    reads = tuple(EDGE_SCHEMA.names)
    emits = "artifact"

    def __init__(self, config: MinhashDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics: dict[str, float] = {}

    def group_key(self) -> tuple[str, ...]:
        return (NODE,)

    def metrics(self) -> dict[str, float]:
        return self._metrics


@register("minhash_dedup.large_star")
class LargeStar(_StarStep):
    """Large-star round: link u's larger neighbours to the smallest of its closed neighbourhood.

    Counts ``non_star_nodes`` (0: the input is a star forest, the fixed point).

    Reads: the edge artifact (src, dst, src_file, dst_file). Writes: edges of the same form.
    """

    version = 1

    def project(self, batch: pa.Table) -> pa.Table:
        both = [_adjacency(batch["src"], batch["dst"], batch["src_file"], batch["dst_file"]),
                _adjacency(batch["dst"], batch["src"], batch["dst_file"], batch["src_file"])]
        return pa.concat_tables(both)

    def __call__(self, table: pa.Table) -> pa.Table:
        table, node, neighbour = _sorted_distinct(table)
        if table.num_rows == 0:
            return EDGE_SCHEMA.empty_table()
        starts = run_starts(node)
        first = run_heads(starts)
        # rows are sorted by neighbour within a node: the first holds the smallest
        smallest_is_neighbour = neighbour[first] < node
        rows = np.arange(table.num_rows)
        m_row = first
        m_id = pc.if_else(pa.array(smallest_is_neighbour), table[NEIGHBOUR].take(pa.array(m_row)), table[NODE])
        m_file = pc.if_else(pa.array(smallest_is_neighbour), table[NEIGHBOUR_FILE].take(pa.array(m_row)),
                            table[NODE_FILE])
        out = pa.array(rows[neighbour > node])
        group_sizes = np.diff(np.append(np.flatnonzero(starts), len(node)))
        heads = np.flatnonzero(starts)
        centers = int(np.sum(neighbour[heads] > node[heads]))
        leaves = int(np.sum((group_sizes == 1) & (neighbour[heads] < node[heads])))
        self._metrics = {"non_star_nodes": self._metrics.get("non_star_nodes", 0) + len(heads) - centers - leaves}
        return _edges(table[NEIGHBOUR].take(out), m_id.take(out), table[NEIGHBOUR_FILE].take(out),
                      m_file.take(out))


@register("minhash_dedup.small_star")
class SmallStar(_StarStep):
    """Small-star round: link u and each of its smaller neighbours to the smallest of them.

    Reads: the edge artifact (src, dst, src_file, dst_file). Writes: edges of the same form.
    """

    version = 1

    def project(self, batch: pa.Table) -> pa.Table:
        # edges are oriented src > dst: the smaller neighbours of src are its dst values
        return _adjacency(batch["src"], batch["dst"], batch["src_file"], batch["dst_file"])

    def __call__(self, table: pa.Table) -> pa.Table:
        table, node, _ = _sorted_distinct(table)
        if table.num_rows == 0:
            return EDGE_SCHEMA.empty_table()
        ids, files, nbrs, nbr_files = (table[c].combine_chunks() for c in (NODE, NODE_FILE, NEIGHBOUR, NEIGHBOUR_FILE))
        starts = run_starts(node)
        first = pa.array(run_heads(starts))
        m_id, m_file = nbrs.take(first), nbr_files.take(first)
        others = pa.array(np.flatnonzero(~starts))  # neighbours other than the smallest
        heads = pa.array(np.flatnonzero(starts))  # one (u, m) per node
        return _edges(pa.concat_arrays([nbrs.take(others), ids.take(heads)]),
                      pa.concat_arrays([m_id.take(others), m_id.take(heads)]),
                      pa.concat_arrays([nbr_files.take(others), files.take(heads)]),
                      pa.concat_arrays([m_file.take(others), m_file.take(heads)]))


@register("minhash_dedup.star_sizes")
class StarSizes(_StarStep):
    """Finish: one component-table row per star member, with the star's size.

    Reads the converged edges (leaf -> center). Writes the component table rows: id, its
    file, dedup_minhash_component (the center) and dedup_minhash_candidates (the star's size).
    """

    version = 1

    def project(self, batch: pa.Table) -> pa.Table:
        # converged edges run leaf -> center: group each star at its center
        return _adjacency(batch["dst"], batch["src"], batch["dst_file"], batch["src_file"])

    def __call__(self, table: pa.Table) -> pa.Table:
        table, node, _ = _sorted_distinct(table)
        if table.num_rows == 0:
            return COMPONENT_SCHEMA.empty_table()
        ids, files, nbrs, nbr_files = (table[c].combine_chunks() for c in (NODE, NODE_FILE, NEIGHBOUR, NEIGHBOUR_FILE))
        heads = np.flatnonzero(run_starts(node))
        sizes = np.diff(np.append(heads, len(node))) + 1
        centers = ids.take(pa.array(heads))
        self._metrics = {"candidate_components": self._metrics.get("candidate_components", 0) + len(heads)}
        return pa.table({
            "id": pa.concat_arrays([centers, nbrs]),
            FILE_COLUMN: pa.concat_arrays([files.take(pa.array(heads)), nbr_files]),
            COMPONENT: pa.concat_arrays([centers, ids]),
            # rows are sorted by center: each leaf row repeats its star's size
            CANDIDATES: pa.array(np.concatenate([sizes, np.repeat(sizes, sizes - 1)]).astype(np.int64)),
        }, schema=COMPONENT_SCHEMA)


@register("minhash_dedup.components_by_file")
class ComponentsByFile(GroupOperator[MinhashDedupConfig]):
    """Finish: the component table grouped by document file (jobs/ writes one slice per file).

    Reads: the component table rows. Writes: the same rows, unchanged.
    """

    version = 1
    Config = MinhashDedupConfig
    reads = tuple(COMPONENT_SCHEMA.names)
    emits = "artifact"

    def group_key(self) -> tuple[str, ...]:
        return (FILE_COLUMN,)

    def __call__(self, table: pa.Table) -> pa.Table:
        return table.select(COMPONENT_SCHEMA.names).sort_by([(FILE_COLUMN, "ascending"), ("id", "ascending")])

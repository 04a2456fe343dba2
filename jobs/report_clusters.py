"""The run report's clusters: exact and near-duplicate cluster sizes with a few example
clusters, and k-means cluster sizes with what later stages removed from each.

Read from what the stages write (docs/operators.md):

- ``exact_dedup.keep``: whole documents with ``dedup_exact_count`` (the group's size) and
  ``dedup_exact_keep`` (one keeper per group); files are hash partitions, so a group's
  members all lie in one file, and an example cluster costs one file's text.
- ``minhash_dedup.apply``: every document's ``dedup_minhash_cluster_size`` and
  ``dedup_minhash_keep`` (one keeper per cluster); ``minhash_dedup.keep``'s artifact lists the
  candidates by partition with their document file (``_tamis_file``), so an example cluster
  costs the text of the few files its members are in.
- ``kmeans.assign``: ``cluster_id`` of every document; the rejected rows of later stages are
  stored whole, so they carry it too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from jobs.part_reader import logical_columns
from jobs.report_reading import CommittedStage, count_by, matching_rows, sample_columns
from jobs.store import Store
from operators.base import DROP_REASON, FILE_COLUMN

CLUSTER_ROWS = 1_000_000
"""Most rows read to count clusters (per stage)."""
EXAMPLES = 3
"""Example clusters shown per kind, the largest found."""
MEMBERS = 4
"""Members shown per example cluster: its keeper and up to three copies."""
TEXT_FILES = 2
"""Most document files whose text is read for the examples of one kind: a file is read whole
to find its members (Parquet cannot skip to a row), and a partition file can be large."""
EXACT = ("exact_dedup.keep", "dedup_exact_hash", "dedup_exact_count", "dedup_exact_keep")
NEAR = ("minhash_dedup.apply", "dedup_minhash_cluster_id", "dedup_minhash_cluster_size", "dedup_minhash_keep")
NEAR_KEEP_OP = "minhash_dedup.keep"
KMEANS_OP, KMEANS_COLUMN = "kmeans.assign", "cluster_id"


@dataclass(frozen=True)
class ClusterMember:
    id: str
    source: str | None
    preview: str
    kept: bool


@dataclass(frozen=True)
class ClusterExample:
    key: str  # the hash (exact) or the keeper's id (near)
    size: int
    members: tuple[ClusterMember, ...]


@dataclass(frozen=True)
class DuplicateClusters:
    """Clusters of two or more documents found by one dedup stage."""

    kind: str  # "exact" or "near"
    stage: str
    sizes: dict[int, int]  # cluster size -> clusters of that size
    examples: tuple[ClusterExample, ...]
    sampled: bool

    @property
    def clusters(self) -> int:
        return sum(self.sizes.values())

    @property
    def copies(self) -> int:
        """Documents beyond one per cluster: what keeping one per cluster removes."""
        return sum((size - 1) * n for size, n in self.sizes.items())


@dataclass(frozen=True)
class KMeansCluster:
    cluster: int
    size: int
    removed: dict[str, int]  # drop reason -> documents of this cluster later stages removed


@dataclass(frozen=True)
class KMeansClusters:
    stage: str
    clusters: tuple[KMeansCluster, ...]  # largest first
    sampled: bool


def duplicate_clusters(store: Store, stages: list[CommittedStage]) -> list[DuplicateClusters]:
    """Exact then near-duplicate clusters, one entry per dedup stage of the run."""
    out = []
    for n, stage in enumerate(stages):
        for op, key, size, keep in (EXACT, NEAR):
            if stage.op != op or not all(stage.has(c) for c in (key, size, keep)):
                continue
            # exact: read whole partition files, so that each group found is complete
            sample = sample_columns(store, stage.result.files, [key, size, keep], CLUSTER_ROWS, op == EXACT[0])
            keepers = _keepers(sample.table(), size, keep)
            counts = count_by(keepers, [size])
            sizes = {s: round(c * sample.scale) for (s,), c in sorted(counts.items())}
            if op == EXACT[0]:
                examples = _exact_examples(store, sample.tables, key, size, keep)
            else:
                examples = _near_examples(store, stage, stages[:n])
            out.append(DuplicateClusters("exact" if op == EXACT[0] else "near", stage.name, sizes,
                                         tuple(examples), sample.sampled))
    return out


def _keepers(table: pa.Table | None, size: str, keep: str) -> pa.Table | None:
    """The keeper row of every cluster of two or more."""
    if table is None:
        return None
    return table.filter(pc.and_(pc.fill_null(table[keep], False), pc.greater_equal(table[size], 2)))


def _largest(table: pa.Table, key: str, size: str, count: int) -> list[tuple[str, int]]:
    """The ``count`` largest clusters of ``table`` (keeper rows) as (key, size), ties by key."""
    top = table.sort_by([(size, "descending"), (key, "ascending")]).slice(0, count)
    return list(zip(top[key].to_pylist(), top[size].to_pylist()))


def _exact_examples(store: Store, tables: tuple[tuple[str, pa.Table], ...], key: str, size: str,
                    keep: str) -> list[ClusterExample]:
    found = [(k, s, file) for file, t in tables if (kt := _keepers(t, size, keep)) is not None
             for k, s in _largest(kt, key, size, EXAMPLES)]
    files = list(dict.fromkeys(file for _, _, file in sorted(found, key=lambda x: (-x[1], x[0]))))[:TEXT_FILES]
    chosen = sorted((f for f in found if f[2] in files), key=lambda x: (-x[1], x[0]))[:EXAMPLES]
    by_file: dict[str, list[str]] = defaultdict(list)
    for k, _, file in chosen:
        by_file[file].append(k)
    members: dict[str, list[ClusterMember]] = defaultdict(list)
    for file, keys in by_file.items():
        for batch in matching_rows(store, [file], key, keys, ["id", "source", "text", keep]):
            for k in keys:
                # a boilerplate page can have a million copies: only the rows shown become Python
                rows = batch.filter(pc.equal(batch[key], k))
                kept = pc.fill_null(rows[keep], False)
                copies = max(0, MEMBERS - 1 - sum(not m.kept for m in members[k]))
                for row in [*rows.filter(kept).to_pylist(), *rows.filter(pc.invert(kept)).slice(0, copies).to_pylist()]:
                    members[k].append(ClusterMember(row["id"], row.get("source"), row.get("text") or "",
                                                    bool(row[keep])))
            if all(len(members[k]) >= min(MEMBERS, s) for k, s, _ in chosen if k in keys):
                break
    return [ClusterExample(k, s, _ordered(members[k])) for k, s, _ in chosen]


def _ordered(members: list[ClusterMember]) -> tuple[ClusterMember, ...]:
    """The keeper first, then the copies by id."""
    return tuple(sorted(members, key=lambda m: (not m.kept, m.id)))


def _near_examples(store: Store, apply: CommittedStage, earlier: list[CommittedStage]) -> list[ClusterExample]:
    """Large clusters of the candidate partition holding most candidates, read back from the
    apply stage's files that hold their members. Where exact dedup ran first, the largest near
    clusters are often exact copies still in the run; clusters with a member that has no exact
    copy come first, so the examples show what near-duplicate means."""
    keep_stage = next((s for s in reversed(earlier) if s.op == NEAR_KEEP_OP and s.result.artifact), None)
    if keep_stage is None:
        return []
    _, key, size, keep = NEAR
    partitions: dict[str, list] = defaultdict(list)
    for ref in keep_stage.result.artifact:
        partitions[ref.key.rsplit("/", 2)[-2]].append(ref)
    biggest = max(partitions.values(), key=lambda refs: sum(r.rows for r in refs))
    table = sample_columns(store, biggest, [FILE_COLUMN, "id", key, size, keep], CLUSTER_ROWS, True).table()
    keepers = _keepers(table, size, keep) if table is not None else None
    if keepers is None or not keepers.num_rows:
        return []
    largest = _largest(keepers, key, size, EXAMPLES * 4)
    wanted: dict[str, dict] = {}  # member id -> its artifact row: the keeper and MEMBERS - 1 copies
    for k, _ in largest:
        rows = table.filter(pc.equal(table[key], k))
        kept = pc.fill_null(rows[keep], False)
        for row in [*rows.filter(kept).to_pylist(), *rows.filter(pc.invert(kept)).sort_by("id").slice(0, MEMBERS - 1)
                    .to_pylist()]:
            wanted[row["id"]] = row
    names = {w[FILE_COLUMN] for w in wanted.values()}
    files = [f.key for f in apply.result.files if f.key.rsplit("/", 1)[-1] in names]
    near_only: set[str] = set()  # clusters with a removed member that has no exact copy
    if apply.has(EXACT[2]):
        for batch in matching_rows(store, files, "id", wanted, ["id", EXACT[2]]):
            for row in batch.to_pylist():
                if row[EXACT[2]] == 1 and not wanted[row["id"]][keep]:
                    near_only.add(wanted[row["id"]][key])
    files_of: dict[str, set[str]] = defaultdict(set)
    for w in wanted.values():
        files_of[w[key]].add(w[FILE_COLUMN])
    chosen, names = [], set()
    for k, n in sorted(largest, key=lambda ks: (ks[0] not in near_only, -ks[1], ks[0])):
        if len(chosen) < EXAMPLES and (not chosen or len(names | files_of[k]) <= TEXT_FILES):
            chosen.append((k, n))
            names |= files_of[k]
    keys = {k for k, _ in chosen}
    wanted = {i: w for i, w in wanted.items() if w[key] in keys}
    members: dict[str, list[ClusterMember]] = defaultdict(list)
    for batch in matching_rows(store, [f for f in files if f.rsplit("/", 1)[-1] in names], "id", wanted,
                               ["id", "source", "text"]):
        for row in batch.to_pylist():
            mark = wanted[row["id"]]
            members[mark[key]].append(ClusterMember(row["id"], row["source"], row["text"] or "", bool(mark[keep])))
    return [ClusterExample(k, s, _ordered(members[k])) for k, s in chosen]


def kmeans_clusters(store: Store, stages: list[CommittedStage]) -> KMeansClusters | None:
    """Documents per k-means cluster and what each later stage removed from each, or None
    when the run has no ``kmeans.assign`` stage."""
    at = next((n for n, s in enumerate(stages) if s.op == KMEANS_OP and s.has(KMEANS_COLUMN)), None)
    if at is None:
        return None
    assign = stages[at]
    sample = sample_columns(store, assign.result.files, [KMEANS_COLUMN], CLUSTER_ROWS)
    sizes = {cluster: n for (cluster,), n in count_by(sample.table(), [KMEANS_COLUMN]).items()}
    removed: dict[object, Counter[str]] = defaultdict(Counter)
    sampled = sample.sampled
    for stage in stages[at + 1:]:
        if not stage.result.rejected or KMEANS_COLUMN not in logical_columns(store, stage.result.rejected[0].key):
            continue
        got = sample_columns(store, stage.result.rejected, [KMEANS_COLUMN, DROP_REASON], CLUSTER_ROWS).table()
        if got is None:
            continue
        scale = sum(f.rows for f in stage.result.rejected) / got.num_rows
        sampled = sampled or scale > 1
        for (cluster, reason), count in count_by(got, [KMEANS_COLUMN, DROP_REASON]).items():
            removed[cluster][reason] += round(count * scale)
    clusters = [KMeansCluster(c, round(n * sample.scale), dict(removed[c])) for c, n in sizes.items()
                if c is not None]
    return KMeansClusters(assign.name, tuple(sorted(clusters, key=lambda c: (-c.size, c.cluster))), sampled)

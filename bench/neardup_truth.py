"""Exact ground truth of the near-duplicate corpus, and the score of a removal set against it.

Ground truth (exact)
--------------------
Normalization and shingles are those of bench/neardup_text.py: NFKC, lowercase, punctuation
and symbols to spaces, the SET of word 5-grams held as 64-bit hashes; two distinct 5-grams
colliding is a 2^-64 event, so Jaccard values are exact for all practical purposes. Two
documents of the same source are true duplicates when their Jaccard is >= ``threshold``
(0.8). Candidate pairs are every pair a MinHashLSH at threshold 0.5 with 256 permutations
returns (per source, all documents) plus every planted pair (copy-original and copy-copy in a
family); exact Jaccard decides each. The connected components of the true-duplicate graph are
the *true clusters*; a cluster of k documents should lose exactly k-1 of them (which one is
kept does not matter).

Scoring (:func:`score`)
-----------------------
Over documents, counted per true cluster: with r of a cluster's k members removed,
TP = min(r, k-1); the excess max(0, r-(k-1)) (the cluster wiped out) is a false positive, as
is every removed document in no true cluster ("wrongly removed"); FN = sum over clusters of
(k-1) - TP. precision = TP / (TP+FP) (1.0 when nothing was removed), recall = TP / sum(k-1),
F1 their harmonic mean. Also: clusters wiped out (all k members removed); formatting-only
recall = the fraction of formatting copies whose pair (copy, original) is not both kept (the
copy or the original was removed); the same pair recall for every kind, over the planted
pairs that are true duplicates; and, by kind, the planted copies in no true cluster (below the
threshold with every relative) that were removed, a part of the wrongly removed.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from neardup_text import LSH_PERM, Sketcher, jaccard

THRESHOLD = 0.8


@dataclass
class GroundTruth:
    """True clusters and planted pairs of one corpus; see the module docstring."""

    threshold: float
    ngram: int
    clusters: list[list[str]]
    planted: list[dict[str, Any]]
    stats: dict[str, Any]
    cluster_of: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cluster_of = {d: i for i, c in enumerate(self.clusters) for d in c}

    @property
    def to_remove(self) -> int:
        return sum(len(c) - 1 for c in self.clusters)

    def to_json(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"threshold": self.threshold, "ngram": self.ngram, "stats": self.stats,
                       "clusters": self.clusters, "planted": self.planted}, f)

    @classmethod
    def from_json(cls, path: str | Path) -> GroundTruth:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        return cls(raw["threshold"], raw["ngram"], raw["clusters"], raw["planted"], raw["stats"])


def _components(n: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The connected components of more than one node of the graph on ``range(n)``."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def true_clusters(docs: list[dict[str, Any]], hashes: list[np.ndarray], known: list[LeanMinHash | None],
                  families: list[list[int]], planted: list[dict[str, Any]], threshold: float,
                  sketch: Sketcher) -> tuple[list[list[int]], dict]:
    """The true clusters (document indexes) and the candidate and edge counts.

    Sets ``jaccard`` on each planted record (copy ``_c``, original ``_o``).
    """
    pairs: set[tuple[int, int]] = set()
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        by_source[d["source"]].append(i)
    for members in by_source.values():
        lsh = MinHashLSH(threshold=0.5, num_perm=LSH_PERM)
        sigs = {i: known[i] or sketch(hashes[i]) for i in members}
        with lsh.insertion_session() as session:
            for i in members:
                session.insert(i, sigs[i])
        for i in members:
            pairs.update((min(i, j), max(i, j)) for j in lsh.query(sigs[i]) if j != i)
    lsh_pairs = len(pairs)
    family_of = {}
    for f, members in enumerate(families):
        family_of.update((i, f) for i in members)
        pairs.update((a, b) for a in members for b in members if a < b)
    sims = {p: jaccard(hashes[p[0]], hashes[p[1]]) for p in pairs}
    edges = [p for p, s in sims.items() if s >= threshold]
    for p in planted:
        p["jaccard"] = round(sims[(min(p["_c"], p["_o"]), max(p["_c"], p["_o"]))], 4)
    unplanted = sum(1 for a, b in edges if family_of.get(a, -1) != family_of.get(b, -2))
    return _components(len(docs), edges), {"candidate_pairs_lsh": lsh_pairs, "candidate_pairs": len(pairs),
                                           "true_edges": len(edges), "unplanted_true_edges": unplanted}


def planted_stats(planted: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Per kind (and per edit rate): planted copies, true duplicates among them, mean and min Jaccard."""
    out: dict[str, Any] = {}
    groups: dict[str, list[float]] = defaultdict(list)
    for p in planted:
        groups[p["kind"]].append(p["jaccard"])
        if p["kind"] == "edit":
            groups[f"edit@{round(p['param'] * 100)}%"].append(p["jaccard"])
    for k in sorted(groups, key=lambda k: (k.split("@")[0], float(k.split("@")[1][:-1]) if "@" in k else 0)):
        js = groups[k]
        out[k] = {"n": len(js), "true_dup": sum(j >= threshold for j in js),
                  "mean_jaccard": round(float(np.mean(js)), 3), "min_jaccard": round(min(js), 3)}
    return out


def score(removed_ids: set[str], truth: GroundTruth) -> dict[str, Any]:
    """Precision, recall and F1 of a removal set against the truth (module docstring)."""
    removed = set(removed_ids)
    per_cluster: Counter[int] = Counter()
    wrongly = 0
    for d in removed:
        c = truth.cluster_of.get(d)
        if c is None:
            wrongly += 1
        else:
            per_cluster[c] += 1
    tp = excess = wiped = 0
    for c, r in per_cluster.items():
        k = len(truth.clusters[c])
        tp += min(r, k - 1)
        excess += max(0, r - (k - 1))
        wiped += r == k
    fp = wrongly + excess
    fn = truth.to_remove - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / truth.to_remove if truth.to_remove else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    negatives_removed: Counter[str] = Counter()
    for p in truth.planted:
        caught = p["copy"] in removed or p["original"] in removed
        if p["jaccard"] >= truth.threshold:
            by_kind[p["kind"]][0] += 1
            by_kind[p["kind"]][1] += caught
        if p["copy"] in removed and p["copy"] not in truth.cluster_of:
            negatives_removed[p["kind"]] += 1
    fmt = [p["copy"] in removed or p["original"] in removed for p in truth.planted if p["kind"] == "formatting"]
    return {
        "removed": len(removed), "tp": tp, "fp": fp, "fn": fn,
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "wrongly_removed": wrongly, "clusters_wiped_out": wiped,
        "formatting_recall": round(sum(fmt) / len(fmt), 4) if fmt else None,
        "pair_recall_by_kind": {k: round(c / n, 4) for k, (n, c) in sorted(by_kind.items())},
        "planted_negatives_removed": dict(sorted(negatives_removed.items())),
    }

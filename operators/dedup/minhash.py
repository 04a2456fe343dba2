"""Near-duplicate removal with MinHash LSH: the ``minhash_dedup`` composite.

``minhash_dedup`` runs as six primitives that hand over through committed outputs:

1. ``signature`` (map): word (or character) n-gram shingles of normalized text, MinHash
   signatures (Broder 1997), and one 64-bit hash per LSH band (Leskovec, Rajaraman and
   Ullman, *Mining of Massive Datasets*, ch. 3) in ``dedup_minhash_bands``.
2. ``buckets`` (group by scope, band, band hash; emits an artifact): star edges from each
   bucket's members to its smallest id, never all pairs.
3. ``components`` (fit on the edges): connected components of the candidate graph.
4. ``assign`` (map): each document's candidate component, looked up in its own file's
   slice of the component table (no broadcast, no shuffle of documents).
5. ``keep`` (group by component; only candidates are shuffled; emits an artifact): with
   ``verify``, candidates are checked by exact Jaccard of their shingle sets and
   clustered greedily around kept documents; one keeper per cluster by the keep policy.
6. ``apply`` (map): every document's marks, a candidate's from its file's slices of the
   keep artifact, any other document its own keeper.

Removal is a later ``filter`` on ``dedup_minhash_keep`` (reason ``dedup:minhash``).
"""

from __future__ import annotations

from collections.abc import Sequence

from operators.base import Composite, Part
from operators.dedup.lsh import AssignComponent, LshBuckets, LshComponents
from operators.dedup.minhash_config import MinhashDedupConfig
from operators.dedup.minhash_index import AssignPrior, BloomProbe, IndexMatch
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.near_keep import KeepApply, VerifyKeep
from operators.registry import register


@register("minhash_dedup")
class MinhashDedup(Composite[MinhashDedupConfig]):
    """Near-duplicates by MinHash LSH, verified by exact Jaccard, one keeper per cluster.

    Writes dedup_minhash_bands, dedup_minhash_component, dedup_minhash_candidates,
    dedup_minhash_cluster_id, dedup_minhash_cluster_size, dedup_minhash_keep; a later
    ``filter`` on ``dedup_minhash_keep`` removes the copies (reason ``dedup:minhash``).
    """

    Config = MinhashDedupConfig

    @classmethod
    def parts(cls, config: MinhashDedupConfig) -> Sequence[Part]:
        index: tuple[Part, ...] = ()
        if config.index.name and config.index.form == "exact":
            index = (Part("index_match", IndexMatch, config), Part("index_assign", AssignPrior, config))
        elif config.index.name:
            index = (Part("index_probe", BloomProbe, config),)
        return (Part("signature", MinhashSignature, config), Part("buckets", LshBuckets, config),
                Part("components", LshComponents, config), Part("assign", AssignComponent, config),
                *index, Part("keep", VerifyKeep, config), Part("apply", KeepApply, config))

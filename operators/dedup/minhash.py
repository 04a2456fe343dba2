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
   clustered greedily around the kept documents they share a band bucket with (after a
   sketch pre-filter); one keeper per cluster by the keep policy.
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

    Writes dedup_minhash_bands (and dedup_minhash_sketch with verify or an exact index),
    dedup_minhash_component, dedup_minhash_candidates,
    dedup_minhash_cluster_id, dedup_minhash_cluster_size, dedup_minhash_keep; a later
    ``filter`` on ``dedup_minhash_keep`` removes the copies (reason ``dedup:minhash``).
    """

    Config = MinhashDedupConfig

    @classmethod
    def parts(cls, config: MinhashDedupConfig) -> Sequence[Part]:
        # Each part is fingerprinted on the fields it reads (Part.fields), so changing `keep`
        # reruns keep and apply, not the signatures. `index.update` and `index.compact_segments`
        # are read by no part: they only say how jobs/ advances the index after the run. `components.*` choose where the
        # components are found (one worker or star rounds), not which: both give the same table.
        banding = _banding_fields(config)
        exact = bool(config.index.name) and config.index.form == "exact"
        index: tuple[Part, ...] = ()
        if exact:
            index = (Part("index_match", IndexMatch, config,
                          _fields("index.name", "scope", "verify", "threshold", "num_perm", *banding)),
                     Part("index_assign", AssignPrior, config, ()))
        elif config.index.name:
            index = (Part("index_probe", BloomProbe, config,
                          _fields("index.name", "index.bloom_capacity", "index.bloom_fp_rate", *banding)),)
        # the signature writes dedup_minhash_sketch with verify or an exact index (writes_sketch)
        signature = _fields("num_perm", "lsh.seed", *SHINGLE_FIELDS, *banding, *(("index.form",) if exact else ("verify",)))
        return (Part("signature", MinhashSignature, config, signature),
                Part("buckets", LshBuckets, config, _fields("scope", *banding)),
                Part("components", LshComponents, config, ()),
                Part("assign", AssignComponent, config, ()),
                *index,
                # index.name: whether it reads the index match columns
                Part("keep", VerifyKeep, config, _fields("keep", "verify", "max_hops", "threshold", *SHINGLE_FIELDS,
                                                              "index.name")),
                Part("apply", KeepApply, config, ("index.name",)))


SHINGLE_FIELDS = ("ngram", "char_ngram", "map_digits", "lsh.scheme")
"""The fields :func:`~operators.dedup.minhash_config.shingle_sets` reads."""


def _banding_fields(config: MinhashDedupConfig) -> tuple[str, ...]:
    """The fields :meth:`MinhashDedupConfig.banding` reads for ``config``: given bands and
    rows are used as they are; otherwise they follow from threshold, num_perm and the
    false-negative weight, whose default depends on verify."""
    if config.lsh.bands is not None:
        return ("lsh.bands", "lsh.rows")
    weight = ("lsh.false_negative_weight",) + (("verify",) if config.lsh.false_negative_weight is None else ())
    return ("lsh.bands", "lsh.rows", "threshold", "num_perm", *weight)


def _fields(*paths: str) -> tuple[str, ...]:
    """``paths`` without repeats, in order."""
    return tuple(dict.fromkeys(paths))

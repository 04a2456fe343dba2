"""Exact deduplication: one keeper per normalized-text hash.

Composite ``exact_dedup`` = ``ExactHash`` (map) -> ``ExactKeep`` (group by scope and hash).
Normalization is Unicode NFKC, case folding (lowercase), and whitespace runs collapsed to
one space with the ends stripped, so copies differing only in case or spacing are caught;
punctuation is kept (near-duplicate removal is MinHash's job). The keeper of each group is
the smallest ``id`` (byte order), so the choice is deterministic whatever the row order.
Removal happens in a ``filter`` stage on ``dedup_exact_keep`` (reason ``dedup:exact``).
With ``index.name``, documents identical to one kept by an earlier run are also marked
(``dedup_exact_history_id``, operators/dedup/exact_index.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import Composite, GroupOperator, MapOperator, Part, set_column
from operators.dedup.exact_config import COUNT, HASH, HASH_VERSION, KEEP, ExactDedupConfig
from operators.dedup.exact_index import AssignHistory, ExactIndexMatch
from operators.registry import register
from operators.runs import run_starts



def normalize_text(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """NFKC, lowercase, whitespace runs collapsed to one space, ends stripped."""
    from operators.dedup.shingling import nfkc

    text = nfkc(text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text)
    text = pc.utf8_lower(text)
    # RE2's \s is ASCII-only; \p{Z} adds Unicode spaces and separators (U+2028, U+3000, ...).
    text = pc.replace_substring_regex(text, pattern=r"[\s\x{0b}\x{85}\p{Z}]+", replacement=" ")
    return pc.utf8_trim_whitespace(text)


@register("exact_dedup.hash")
class ExactHash(MapOperator[ExactDedupConfig]):
    """Hash of normalized text (BLAKE2b, 128 bits, hex) into ``dedup_exact_hash``.

    Reads: text (and source when scope is source). Writes: dedup_exact_hash.
    Deterministic; no state. With scope ``source`` the source is part of the hashed bytes,
    so groups never span sources.
    """

    keeps_rows = True
    version = HASH_VERSION
    Config = ExactDedupConfig
    reads = ("text", "source")
    writes = (HASH,)

    def __call__(self, batch: pa.Table) -> pa.Table:
        normalized = normalize_text(batch["text"]).to_pylist()
        if self.config.scope == "source":
            sources = batch["source"].to_pylist()
            keys = [f"{s}\x00{t}" for s, t in zip(sources, normalized)]
        else:
            keys = normalized
        # One C-level digest per document: the work per document dwarfs the loop.
        digests = [hashlib.blake2b(k.encode(), digest_size=16).hexdigest() for k in keys]
        return set_column(batch, HASH, pa.array(digests, pa.string()))


@register("exact_dedup.keep")
class ExactKeep(GroupOperator[ExactDedupConfig]):
    """Marks the smallest id of each hash group as the keeper.

    Reads: id, dedup_exact_hash. Writes: dedup_exact_keep (bool), dedup_exact_count (int64,
    the group's size). Receives complete groups; vectorized with a sort by (hash, id).
    Deterministic: the keeper depends only on the ids, never on row order.
    """

    version = 1
    Config = ExactDedupConfig
    reads = ("id", HASH)
    writes = (KEEP, COUNT)

    def group_key(self) -> tuple[str, ...]:
        return (HASH,)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        if n == 0:
            return set_column(set_column(table, KEEP, pa.array([], pa.bool_())),
                              COUNT, pa.array([], pa.int64()))
        order = pc.sort_indices(table, sort_keys=[(HASH, "ascending"), ("id", "ascending")])
        hashes = table[HASH].take(order).to_numpy(zero_copy_only=False)
        starts = run_starts(hashes)
        group_index = np.cumsum(starts) - 1
        sizes = np.bincount(group_index)
        keep = np.empty(n, dtype=bool)
        count = np.empty(n, dtype=np.int64)
        positions = order.to_numpy()
        keep[positions] = starts
        count[positions] = sizes[group_index]
        return set_column(set_column(table, KEEP, pa.array(keep)), COUNT, pa.array(count))


@register("exact_dedup")
class ExactDedup(Composite[ExactDedupConfig]):
    """Exact duplicates by normalized-text hash: hash (map), then keep the min id (group).

    Writes dedup_exact_hash, dedup_exact_keep, dedup_exact_count; a later ``filter`` on
    ``dedup_exact_keep`` removes the copies with reason ``dedup:exact``.
    """

    Config = ExactDedupConfig

    @classmethod
    def parts(cls, config: ExactDedupConfig) -> Sequence[Part]:
        # keep reads no setting: scope is already in the hash it groups by. index.update and
        # index.compact_segments are read by no part: they say how jobs/ advances the index.
        history: tuple[Part, ...] = ()
        if config.index.name:
            history = (Part("index_match", ExactIndexMatch, config, ("index.name", "scope")),
                       Part("index_assign", AssignHistory, config, ()))
        return (Part("hash", ExactHash, config, ("scope",)), *history, Part("keep", ExactKeep, config, ()))


__all__ = ["COUNT", "HASH", "KEEP", "ExactDedup", "ExactDedupConfig", "ExactHash", "ExactKeep", "normalize_text"]

"""``exact_dedup``'s config and column names, shared by its parts (operators/dedup/exact.py)
and its history index (operators/dedup/exact_index.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.base import OperatorConfig

HASH = "dedup_exact_hash"
KEEP = "dedup_exact_keep"
COUNT = "dedup_exact_count"
HISTORY_ID = "dedup_exact_history_id"
HASH_VERSION = 2
"""``exact_dedup.hash``'s version (2: Unicode whitespace collapsed too): a history index
keeps hashes of one version only."""


class ExactIndexConfig(OperatorConfig):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="History index in "
                             "the store (exact_indexes/<name>/): also mark documents whose normalized text a "
                             "document kept by an earlier run that added to it had (dedup_exact_history_id); "
                             "null: no index.")
    update: bool = Field(True, description="Add this run's kept documents to the index when the run succeeds.")
    compact_segments: int = Field(16, ge=2, description="When a run would leave the index with more segments "
                                  "than this (one per run), it writes the whole index as one file instead.")


class ExactDedupConfig(OperatorConfig):
    scope: Literal["source", "global"] = Field(
        "source", description="Deduplicate within each source (default) or across all sources.")
    index: ExactIndexConfig = Field(default_factory=ExactIndexConfig, description="History index kept across "
                                    "runs (nightly runs): documents identical to one an earlier run kept get "
                                    "dedup_exact_history_id.")

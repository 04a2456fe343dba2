"""``mix.shuffle``: the mix in a random order across groups, for trainers that read shards in order.

A group stage keyed on ``mix_order`` (a hash of id, seed and epoch that ``mix.sample``
writes): the engine's shuffle sends each row to a partition by that key and sorts every
partition by it, so each partition is a uniform random subset of the mix in a random
order, and the output shards cut from the partitions are too. The operator itself returns
what it is given; the work is the engine's. Copies of one document get different keys and
so land apart.
"""

from __future__ import annotations

import pyarrow as pa

from operators.base import GroupOperator
from operators.mixing.config import ORDER, MixConfig
from operators.registry import register


@register("mix.shuffle")
class MixShuffle(GroupOperator[MixConfig]):
    """The mix's documents regrouped by ``mix_order``: shards in a random order across groups.

    Reads: mix_order (and every column: whole documents are shuffled). Writes nothing new.
    """

    version = 1
    Config = MixConfig
    reads = (ORDER,)

    def group_key(self) -> tuple[str, ...]:
        return (ORDER,)

    def __call__(self, table: pa.Table) -> pa.Table:
        return table  # the engine hands each partition sorted by (mix_order, id): already the order wanted

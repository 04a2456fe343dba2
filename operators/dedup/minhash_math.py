"""MinHash signatures, LSH banding and Jaccard similarity, vectorized with numpy.

MinHash (Broder 1997, "On the resemblance and containment of documents"): for a random
permutation ``h`` of the shingle universe, ``P[min h(A) = min h(B)] = J(A, B)``, so the
fraction of equal positions of two ``num_perm``-long signatures estimates the Jaccard
similarity with standard error ``sqrt(J (1 - J) / num_perm)``. LSH banding (Leskovec,
Rajaraman and Ullman, *Mining of Massive Datasets*, ch. 3.4): cut each signature into
``b`` bands of ``r`` rows; two documents become candidates when some band is equal, which
happens with probability ``1 - (1 - s**r)**b`` at similarity ``s``. FineWeb uses word
5-grams with 14 bands of 8 rows (112 permutations).

Two permutation schemes (see :class:`Permutations`): ``"fast"`` (affine maps modulo
``2**32`` of 32-bit shingle keys, datasketch's ``"affine32"`` family) and ``"datasketch"``
(bit-compatible with ``datasketch.MinHash``'s ``"legacy"`` scheme, the only one before
datasketch 2.0). Everything here is a pure,
deterministic function of its arguments; seeds are explicit.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field

import numpy as np

from operators.dedup import hash_kernel
from operators.dedup.shingling import Scheme, ShingleSets
from operators.hashing import splitmix64

MAX_HASH = (1 << 32) - 1
"""Largest signature value, also the value of every position of an empty document."""
MERSENNE_PRIME = (1 << 61) - 1
"""Modulus of datasketch's legacy permutations ``(a x + b) mod (2**61 - 1)``."""
DEFAULT_CHUNK_BYTES = 256 << 10
"""Target size of one row of hash values in :func:`signatures` (64 K ``uint32`` keys).

A row and its keys stay in one core's L2 while all the hash functions pass over them;
larger blocks fall out of L2, and below 128 KiB the per-call overhead of the loop over
permutations grows (docs/benchmarks.md).
"""

_U64 = np.uint64
_U32 = np.uint32
_BAND_SALT = _U64(0x13198A2E03707344)
_GRID_POINTS = 4001  # trapezoid nodes per integral
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


@dataclass(frozen=True, eq=False)
class Permutations:
    """``num_perm`` random hash functions standing in for random permutations.

    * ``"fast"``: affine maps modulo ``2**32`` of the shingle hash's high 32 bits ``k``,
      ``h_i(x) = (a_i k + b_i) mod 2**32``, odd ``a_i`` (so each ``h_i`` is a bijection
      of 32-bit keys: no added collisions) and any ``b_i``, drawn as ``uint32`` from
      ``np.random.default_rng(seed)``. This is datasketch's default scheme since 2.0
      (``"affine32"``, after its own fmix pre-mix): 2-universal, not provably min-wise
      independent, which suffices because the shingle hashes fed to it are already
      avalanche-mixed; the tests bound the estimation error against exact Jaccard.
      Computed with ``uint32`` numpy passes, twice as many values per cache line as
      64-bit arithmetic.
    * ``"datasketch"``: exactly ``datasketch.MinHash(num_perm, seed, scheme="legacy")``:
      ``a, b`` drawn in turn from ``np.random.RandomState(seed)`` with
      ``randint(1, p)`` and ``randint(0, p)``, ``p = 2**61 - 1``, and
      ``h_i(x) = ((a_i x + b_i) mod p) & (2**32 - 1)`` in ``uint64`` (the product wraps
      modulo ``2**64`` before the ``mod p``, as in datasketch). Inputs must be below
      ``2**32`` (``sha1_hash32`` values).

    Attributes:
        num_perm: number of hash functions (signature length).
        seed: seed of the parameter draw.
        scheme: ``"fast"`` or ``"datasketch"``.
        a: multipliers, shape ``(num_perm,)``: ``uint32`` for ``"fast"``, else ``uint64``.
        b: offsets, same shape and type.
    """

    num_perm: int
    seed: int
    scheme: Scheme
    a: np.ndarray = field(init=False, repr=False)
    b: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.num_perm, (int, np.integer)) or not 1 <= self.num_perm <= 1 << 32:
            raise ValueError(f"num_perm must be an integer in [1, 2**32], got {self.num_perm!r}")
        if self.scheme == "fast":
            rng = np.random.default_rng(self.seed)
            a = rng.integers(0, 1 << 31, size=self.num_perm, dtype=np.uint32) * _U32(2) + _U32(1)
            b = rng.integers(0, MAX_HASH, size=self.num_perm, dtype=np.uint32, endpoint=True)
        elif self.scheme == "datasketch":
            # datasketch draws a_i, b_i alternately; reproducing its stream needs this order,
            # so the draw is a loop (once per construction, never per shingle).
            gen = np.random.RandomState(self.seed)
            prime = _U64(MERSENNE_PRIME)
            pairs = np.array([(gen.randint(1, prime, dtype=np.uint64),
                               gen.randint(0, prime, dtype=np.uint64))
                              for _ in range(self.num_perm)], dtype=np.uint64)
            a, b = pairs[:, 0].copy(), pairs[:, 1].copy()
        else:
            raise ValueError(f"scheme must be 'fast' or 'datasketch', got {self.scheme!r}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)

    def keys(self, values: np.ndarray) -> np.ndarray:
        """The inputs of the hash functions for ``uint64`` shingle values.

        ``"fast"``: the high 32 bits (``uint32``), the best-mixed half of the shingle
        hash; ``"datasketch"``: the values themselves (below ``2**32``).
        """
        return (values >> _U64(32)).astype(np.uint32) if self.scheme == "fast" else values

    def apply(self, i: int, keys: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Hash function ``i`` of every key, written into ``out``; returns ``out``.

        ``keys`` come from :meth:`keys`; ``out`` has their length and the type of
        :attr:`a`. ``uint32`` arithmetic wraps modulo ``2**32``, the ``"fast"`` modulus.
        """
        np.multiply(keys, self.a[i], out=out)
        np.add(out, self.b[i], out=out)
        if self.scheme == "datasketch":
            np.remainder(out, _U64(MERSENNE_PRIME), out=out)
            np.bitwise_and(out, _U64(MAX_HASH), out=out)
        return out


def signatures(shingles: ShingleSets, perms: Permutations, *,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
    """MinHash signature of every document: the minimum of each hash function over its set.

    ``"fast"`` permutations run in one compiled loop
    (:func:`~operators.dedup.hash_kernel.min_hashes`), the hash functions innermost on
    SIMD lanes: faster than the numpy passes below, which the ``"datasketch"``
    scheme (64-bit arithmetic modulo a prime) still takes.

    Shingles are taken in blocks of whole documents, about ``chunk_bytes`` of keys each;
    for every block, each hash function in turn fills one row (two contiguous ``uint32``
    passes with a scalar operand, numpy's fastest loops) that ``np.minimum.reduceat``
    reduces per document straight into the result. Against one (permutations x block)
    matrix per block with broadcast operands, this is faster even with its Python loop over
    permutations (one iteration per 64 K shingles; docs/benchmarks.md).
    ``reduceat`` returns ``row[i]`` (not the identity) for an empty segment, so documents
    without shingles are left out of the segments; they keep ``MAX_HASH`` everywhere,
    datasketch's initial value.

    Args:
        shingles: per-document shingle sets (:func:`~operators.dedup.shingling.word_shingles`).
        perms: the hash functions; their scheme must match the shingles' scheme.
        chunk_bytes: target size of one row of keys (``"datasketch"``); a document larger
            than it makes a block of its own.

    Returns:
        ``uint64`` array of shape ``(num_docs, num_perm)``, every value ``<= MAX_HASH``.

    Raises:
        ValueError: ``"datasketch"`` permutations given shingle values of 2**32 or more.
    """
    values, num_perm = shingles.values, perms.num_perm
    if perms.scheme == "datasketch" and values.size and int(values.max()) > MAX_HASH:
        raise ValueError("'datasketch' permutations need 32-bit shingle values "
                         "(word_shingles(..., scheme='datasketch')); got values >= 2**32")
    keys = perms.keys(values)
    if perms.scheme == "fast":  # compiled, SIMD over the hash functions
        return hash_kernel.min_hashes(keys, shingles.offsets, perms.a, perms.b).astype(np.uint64)
    nonempty = np.flatnonzero(shingles.sizes)
    seg_starts = shingles.offsets[nonempty]  # strictly increasing, tiling [0, len(values))
    acc = np.empty((num_perm, len(nonempty)), perms.a.dtype)  # permutation-major: rows fill slices
    # Block boundaries: the first document starting at or after each multiple of the target.
    per_block = max(1, chunk_bytes // perms.a.itemsize)
    firsts = np.unique(np.searchsorted(seg_starts, np.arange(0, len(keys), per_block)))
    bounds = np.append(firsts[firsts < len(seg_starts)], len(seg_starts))
    edges = np.append(seg_starts, len(keys))  # shingle offset of each bound
    row = np.empty(int(np.diff(edges[bounds]).max(initial=0)), perms.a.dtype)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        c0, c1 = int(edges[lo]), int(edges[hi])
        block, starts, out = keys[c0:c1], seg_starts[lo:hi] - c0, row[:c1 - c0]
        for i in range(num_perm):
            np.minimum.reduceat(perms.apply(i, block, out), starts, out=acc[i, lo:hi])
    result = np.full((shingles.num_docs, num_perm), MAX_HASH, dtype=np.uint64)
    result[nonempty] = acc.T
    return result


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """A 64-bit hash of each band of each signature, for LSH bucketing.

    Band ``j`` covers columns ``[j * rows, (j + 1) * rows)``; columns past ``bands * rows``
    are ignored. Each value is salted with its (band, row) position and avalanche-mixed
    (splitmix64, a bijection), the ``rows`` mixed values of a band are summed modulo
    ``2**64`` and mixed again. Equal bands hash equal; equal values in different bands or
    rows hash differently. Distinct bands collide with probability about ``2**-64`` per
    pair, so across ``N`` documents about ``N**2 / 2**65`` spurious pairs per band.

    Args:
        sigs: ``uint64`` signatures, shape ``(num_docs, num_perm)``.
        bands: number of bands ``b``.
        rows: rows per band ``r``; ``b * r <= num_perm``.

    Returns:
        ``uint64`` array of shape ``(num_docs, bands)``.
    """
    sigs = np.asarray(sigs, dtype=np.uint64)
    if sigs.ndim != 2 or bands < 1 or rows < 1 or bands * rows > sigs.shape[1]:
        raise ValueError(f"need 2-D signatures with bands * rows <= num_perm; got shape "
                         f"{sigs.shape}, bands={bands}, rows={rows}")
    grid = sigs[:, :bands * rows].reshape(len(sigs), bands, rows)
    position = np.arange(bands * rows, dtype=np.uint64).reshape(bands, rows)
    salt = splitmix64(position ^ _BAND_SALT)
    mixed = splitmix64(grid + salt)  # wraparound addition keeps it a bijection per position
    return splitmix64(np.add.reduce(mixed, axis=2, dtype=np.uint64))


@functools.lru_cache(maxsize=64)  # slow to compute, and the band projections ask for it once per batch
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5,
                  fn_weight: float = 0.5) -> tuple[int, int]:
    """``(bands, rows)`` minimizing the weighted false-positive and false-negative areas.

    The objective is ``fp_weight * integral_0^t P(s) ds + fn_weight * integral_t^1
    (1 - P(s)) ds`` with ``P(s) = 1 - (1 - s**r)**b``, over ``b * r <= num_perm``: the
    criterion of datasketch's ``MinHashLSH`` (``_optimal_param``), with the same scan order
    and first-minimum tie rule, integrated with the trapezoid rule on a fine grid instead
    of scipy's adaptive quadrature.

    Args:
        threshold: Jaccard similarity ``t`` in ``(0, 1)`` at which pairs should be found.
        num_perm: signature length.
        fp_weight: weight of the false-positive area.
        fn_weight: weight of the false-negative area.

    Returns:
        ``(bands, rows)``.
    """
    if not 0.0 < threshold < 1.0 or num_perm < 1 or fp_weight < 0 or fn_weight < 0:
        raise ValueError(f"need 0 < threshold < 1, num_perm >= 1 and non-negative weights; got "
                         f"threshold={threshold}, num_perm={num_perm}, weights "
                         f"{fp_weight}, {fn_weight}")
    return min(_band_objectives(threshold, num_perm, fp_weight, fn_weight),
               key=lambda item: item[0])[1]


def band_objective(threshold: float, bands: int, rows: int, fp_weight: float = 0.5,
                   fn_weight: float = 0.5) -> float:
    """The value :func:`optimal_bands` minimizes, for one ``(bands, rows)``."""
    return float(_objectives(threshold, bands, np.array([rows]), fp_weight, fn_weight)[0])


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """Probability that two documents of Jaccard similarity ``s`` share a band."""
    return float(1.0 - (1.0 - float(s) ** rows) ** bands)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity ``|A & B| / |A | B|`` of two sorted, unique arrays of hashes
    (``uint64``, or ``uint32`` verification sets: compared as ``uint64``, the same order).

    Two empty sets give 0.0, not 1.0: documents without shingles carry no evidence of
    being copies of each other and must never be joined.
    """
    # one compiled merge: much cheaper than a searchsorted of one into the other and its
    # Python overhead
    return float(hash_kernel.sorted_jaccard(np.ascontiguousarray(a, dtype=np.uint64),
                                             np.ascontiguousarray(b, dtype=np.uint64)))


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """MinHash estimate of Jaccard similarity: the fraction of equal signature positions.

    Two empty documents both have all-``MAX_HASH`` signatures and so estimate 1.0, unlike
    :func:`jaccard`; callers exclude documents without shingles before comparing.
    """
    if sig_a.shape != sig_b.shape:
        raise ValueError(f"signatures differ in shape: {sig_a.shape} vs {sig_b.shape}")
    return float(np.count_nonzero(sig_a == sig_b) / sig_a.size)


def sketch_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """b-bit MinHash estimates (b = 8; Li and Koenig 2010) of the Jaccard similarity of each
    row of ``left`` with the same row of ``right`` (or with ``right``, one row, broadcast):
    rows are the low bytes of signatures, and two values agree with probability
    ``s + (1 - s) / 256``."""
    equal = np.count_nonzero(left == right, axis=-1) / left.shape[-1]
    return (equal - 1 / 256) / (1 - 1 / 256)


def _objectives(threshold: float, bands: int, rows: np.ndarray, fp_weight: float,
                fn_weight: float) -> np.ndarray:
    """Objective of ``bands`` bands for each entry of ``rows``, vectorized over the grid."""
    s_fp = np.linspace(0.0, threshold, _GRID_POINTS)
    s_fn = np.linspace(threshold, 1.0, _GRID_POINTS)
    r = rows.astype(np.float64)[:, None]
    fp = _trapezoid(1.0 - (1.0 - s_fp ** r) ** bands, s_fp, axis=1)
    fn = _trapezoid((1.0 - s_fn ** r) ** bands, s_fn, axis=1)
    return fp_weight * fp + fn_weight * fn


def _band_objectives(threshold: float, num_perm: int, fp_weight: float,
                     fn_weight: float) -> list[tuple[float, tuple[int, int]]]:
    """``(objective, (b, r))`` for every ``b * r <= num_perm``, in datasketch's scan order."""
    out = []
    for b in range(1, num_perm + 1):  # one step per band count, vectorized over rows
        rows = np.arange(1, num_perm // b + 1)
        errors = _objectives(threshold, b, rows, fp_weight, fn_weight)
        out.extend((float(e), (b, int(r))) for r, e in zip(rows, errors))
    return out

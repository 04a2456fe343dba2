"""The per-batch text structure every quality rule family reads: lines, chunks and words.

A batch's texts are cut once into ``str.splitlines()`` lines, each line into whitespace
chunks (``str.split()``), and each chunk into words (:mod:`operators.quality.words`). Each
level is a flat array with the index of its parent, so per-document figures are
``np.bincount`` sums and nothing loops per document. Words are tokenized once per distinct
chunk of the batch, then gathered back to every occurrence; each word carries an id into
the batch's vocabulary of distinct words, whose features (length, letters, punctuation)
are computed once per distinct word.

:func:`text_stats` keeps the structure of the most recent text array, so quality operators
that run one after another on the same batch (fused map stages) share it; it holds one
batch at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.quality import words as word_rules
from operators.quality.charsets import (
    LINE_BREAK_PATTERN,
    SYMBOLS,
    TERMINAL_PUNCTUATION,
    WHITESPACE,
    re2_class,
)
from operators.quality.grouping import group_pairs
from operators.quality.special_cases import SPECIAL_WORDS

_WHITESPACE_RUN = re2_class(WHITESPACE) + "+"
_NON_SYMBOL = re2_class(SYMBOLS, negate=True)
_TERMINALS = pa.array(sorted(TERMINAL_PUNCTUATION))
_SPECIAL_WORDS = pa.array(sorted(SPECIAL_WORDS))


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float64, 0 where the denominator is 0."""
    out = np.zeros(len(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)
    return out


def per_doc(doc: np.ndarray, num_docs: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum ``weights``) per document index in ``doc``: int64 counts, float64 sums."""
    if weights is None:
        return np.bincount(doc, minlength=num_docs).astype(np.int64)
    return np.bincount(doc, weights=weights, minlength=num_docs).astype(np.float64)


def numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``values`` as a numpy array (copying booleans and chunked arrays)."""
    return values.to_numpy(zero_copy_only=False) if isinstance(values, pa.Array) \
        else values.to_numpy()


def spread(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concat(range(s, s + c) for s, c in zip(starts, counts))``, vectorized."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total, dtype=np.int64)


@dataclass(frozen=True)
class Pieces:
    """Substrings cut out of a parent array, flat, in order, with their parent's index."""

    text: pa.Array
    parent: np.ndarray
    doc: np.ndarray

    @cached_property
    def length(self) -> np.ndarray:
        """Code points of each piece."""
        return numpy(pc.utf8_length(self.text)).astype(np.int64)

    def duplicates(self, num_docs: int) -> tuple[np.ndarray, np.ndarray]:
        """Per document, the pieces equal to an earlier piece of it, and their code points."""
        ids = numpy(pc.dictionary_encode(self.text).indices)
        repeated = ~group_pairs(self.doc, ids).first
        doc = self.doc[repeated]
        return per_doc(doc, num_docs), per_doc(doc, num_docs, self.length[repeated])


def split_pieces(text: pa.Array, pattern: str, doc: np.ndarray | None = None,
                 keep_empty: bool = True) -> Pieces:
    """``text`` split on the RE2 ``pattern`` (``doc``: each string's document, else itself)."""
    lists = pc.split_pattern_regex(text, pattern)
    pieces = pc.list_flatten(lists)
    parent = numpy(pc.list_parent_indices(lists)).astype(np.int64)
    if not keep_empty:
        keep = pc.greater(pc.utf8_length(pieces), 0)
        pieces, parent = pieces.filter(keep), parent[numpy(keep)]
    return Pieces(pieces, parent, parent if doc is None else doc[parent])


@dataclass(frozen=True)
class Words:
    """Every word of a batch, in order: its vocabulary id, line and document."""

    vocab: pa.Array
    token: np.ndarray
    line: np.ndarray
    doc: np.ndarray

    @cached_property
    def vocab_length(self) -> np.ndarray:
        """Code points of each distinct word."""
        return numpy(pc.utf8_length(self.vocab)).astype(np.int64)

    def vocab_matches(self, pattern: str) -> np.ndarray:
        """Whether each distinct word contains a match of the RE2 ``pattern``."""
        return numpy(pc.match_substring_regex(self.vocab, pattern))

    @cached_property
    def vocab_non_symbol(self) -> np.ndarray:
        """Distinct words holding a character outside :data:`~charsets.SYMBOLS`."""
        return self.vocab_matches(_NON_SYMBOL)

    @cached_property
    def vocab_letter(self) -> np.ndarray:
        """Distinct words holding a Unicode letter (``str.isalpha``)."""
        return self.vocab_matches(r"\p{L}")

    @cached_property
    def vocab_punct(self) -> np.ndarray:
        """Distinct words made only of punctuation (category P*; spaCy's ``is_punct``)."""
        return self.vocab_matches(r"^\p{P}+$")

    @cached_property
    def vocab_terminal(self) -> np.ndarray:
        """Distinct words that are one sentence-ending mark."""
        return numpy(pc.is_in(self.vocab, value_set=_TERMINALS))


def _tokenize(chunks: Pieces) -> Words:
    """The words of every chunk, each distinct chunk tokenized once."""
    encoded = pc.dictionary_encode(chunks.text)
    distinct = encoded.dictionary
    occurrence = numpy(encoded.indices).astype(np.int64)
    plain = pc.and_(pc.match_substring_regex(distinct, word_rules.FAST_PATH),
                    pc.invert(pc.is_in(distinct, value_set=_SPECIAL_WORDS)))
    plain = numpy(plain)
    ruled = np.flatnonzero(~plain)
    split = [word_rules.split_chunk(chunk) for chunk in distinct.take(ruled).to_pylist()]
    counts = np.ones(len(distinct), dtype=np.int64)
    counts[ruled] = [len(tokens) for tokens in split]
    # Words of plain chunks are the chunks themselves; the others follow them in `source`.
    source = pa.concat_arrays([distinct, pa.array([t for ts in split for t in ts], distinct.type)])
    starts = np.arange(len(distinct), dtype=np.int64)
    starts[ruled] = len(distinct) + np.cumsum(counts[ruled]) - counts[ruled]
    words = pc.dictionary_encode(source.take(pa.array(spread(starts, counts))))
    word_ids = numpy(words.indices).astype(np.int64)
    per_chunk = counts[occurrence]
    first = (np.cumsum(counts) - counts)[occurrence]
    index = np.int32 if int(per_chunk.sum()) < 2**31 and len(word_ids) < 2**31 else np.int64
    # int32 ids halve the memory of the per-word arrays, the largest of a batch.
    return Words(words.dictionary, word_ids.astype(index)[spread(first, per_chunk)],
                 np.repeat(chunks.parent.astype(index), per_chunk),
                 np.repeat(chunks.doc.astype(index), per_chunk))


class TextStats:
    """Lazily built structure of one text array; each level is computed at most once."""

    def __init__(self, text: pa.Array) -> None:
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        self.text: pa.Array = pc.fill_null(text, "")
        self.num_docs = len(text)

    @cached_property
    def chars(self) -> np.ndarray:
        """Code points of each text (``len(text)``)."""
        return numpy(pc.utf8_length(self.text)).astype(np.int64)

    @cached_property
    def lines(self) -> Pieces:
        """The ``str.splitlines()`` lines of every text, unstripped, blank ones included."""
        pieces = split_pieces(self.text, LINE_BREAK_PATTERN)
        # split leaves one empty piece after a final line break (and for ""); splitlines not.
        last = np.cumsum(np.bincount(pieces.doc, minlength=self.num_docs)) - 1
        drop = np.zeros(len(pieces.doc), dtype=bool)
        drop[last[last >= 0]] = True
        drop &= pieces.length == 0
        if not drop.any():
            return pieces
        keep = ~drop
        return Pieces(pieces.text.filter(pa.array(keep)), pieces.parent[keep], pieces.doc[keep])

    @cached_property
    def line_chunks(self) -> Pieces:
        """The ``str.split()`` chunks of every line; ``parent`` is the line's index."""
        return split_pieces(self.lines.text, _WHITESPACE_RUN, self.lines.doc, keep_empty=False)

    @cached_property
    def words(self) -> Words:
        """The words of every text (datatrove's ``split_into_words``), with their line."""
        return _tokenize(self.line_chunks)


_cache_lock = threading.Lock()
_cache: tuple[tuple[object, ...], pa.Array, TextStats] | None = None


def _identity(text: pa.Array | pa.ChunkedArray) -> tuple[object, ...]:
    arrays = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    return tuple((a.type, a.offset, len(a), *(b.address if b else 0 for b in a.buffers()))
                 for a in arrays)


def text_stats(text: pa.Array | pa.ChunkedArray) -> TextStats:
    """The :class:`TextStats` of ``text``, shared with the previous caller on the same array.

    The cache holds a reference to the last array, so its buffers stay alive and an equal
    identity (type, offset, length, buffer addresses) means the very same immutable data.
    """
    global _cache
    key = _identity(text)
    with _cache_lock:
        if _cache is not None and _cache[0] == key:
            return _cache[2]
    stats = TextStats(text)
    with _cache_lock:
        _cache = (key, text, stats)
    return stats

"""Word n-gram repetition of Gopher (Rae et al. 2021, appendix A, table A1), vectorized.

N-grams are grouped exactly, without hashing: 1-grams are the (document, word) pairs, and
each n-gram is the pair (number of its (n-1)-gram prefix, its last word), so two n-grams
fall in one group exactly when they are the same words in the same document. Grouping is
one integer sort per n (:func:`~operators.quality.text_stats.group_pairs`), which also
yields each group's first occurrence and size.

The duplicated-n-gram measure follows datatrove's greedy scan (``find_all_duplicate``): walk
the n-gram positions; an n-gram seen before adds its characters and the walk jumps past it
(so counted n-grams never overlap and the n-grams jumped over are not remembered), any
other is remembered. Only repeated n-grams can change that walk: where no two of a
document's repeats overlap and no first occurrence starts inside a repeat, every repeat
counts (a vectorized sum); elsewhere the walk runs in Python over the repeats alone.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from operators.quality.grouping import Groups, group_pairs


class NGramIndex:
    """Exact groups of a batch's repeated word n-grams, built up one ``n`` at a time.

    Only n-grams that can repeat are grouped: an n-gram whose (n-1)-gram prefix occurs
    once in its document occurs once too, so each step sorts just the positions whose
    prefix repeats, and the work shrinks quickly with ``n``.

    Args:
        word: Vocabulary id of every word of the batch, documents one after another.
        doc: Document index of every word (non-decreasing).
        word_length: Code points of every word.
        num_docs: Documents in the batch.
    """

    def __init__(self, word: np.ndarray, doc: np.ndarray, word_length: np.ndarray,
                 num_docs: int) -> None:
        self.word, self.doc = word, doc
        self.num_docs = num_docs
        self._offsets = np.concatenate(([0], np.cumsum(word_length, dtype=np.int64)))
        self._doc_start = np.searchsorted(self.doc, np.arange(num_docs + 1))
        self._n = 1
        self._start = np.arange(len(word), dtype=np.int32 if len(word) < 2**31 else np.int64)
        self._groups = group_pairs(self.doc, self.word)

    def groups(self, n: int) -> tuple[np.ndarray, Groups]:
        """(start positions, their groups) of the n-grams that may repeat: every n-gram
        not among them occurs once in its document.

        Calls must ask for non-decreasing ``n``; each step costs one integer sort.
        """
        if n < self._n:
            raise ValueError(f"n-grams are built in increasing n: asked {n} after {self._n}")
        while self._n < n:
            self._n += 1
            # An n-gram at p is the (n-1)-gram at p plus the word at p + n - 1; it can
            # repeat only if that (n-1)-gram does.
            repeats = self._groups.size[self._groups.number] >= 2
            start, prefix = self._start[repeats], self._groups.number[repeats]
            last = start + self._n - 1
            keep = last < len(self.word)
            keep[keep] = self.doc[last[keep]] == self.doc[start[keep]]
            self._start = start[keep]
            self._groups = group_pairs(prefix[keep], self.word[last[keep]])
        return self._start, self._groups

    def chars(self, start: np.ndarray, n: int) -> np.ndarray:
        """Code points of the words of the n-grams at ``start``, separators excluded."""
        return self._offsets[start + n] - self._offsets[start]

    def top_chars(self, n: int) -> np.ndarray:
        """Per document: ``len(" ".join(g)) * count(g)`` for its most frequent n-gram ``g``.

        Ties go to the n-gram seen first (``Counter.most_common``); 0 without n-grams.
        """
        out = np.zeros(self.num_docs, dtype=np.int64)
        # A document whose n-grams all occur once: its first n-gram, once.
        has_gram = np.diff(self._doc_start) >= n
        first_gram = self._doc_start[:-1][has_gram]
        out[has_gram] = self.chars(first_gram, n) + n - 1
        start, groups = self.groups(n)
        repeated = groups.size >= 2
        if not repeated.any():
            return out
        size = groups.size[repeated]
        first = start[groups.first_position[repeated]]
        doc = self.doc[first]
        most = np.zeros(self.num_docs, dtype=np.int64)
        np.maximum.at(most, doc, size)
        top = size == most[doc]
        earliest = np.full(self.num_docs, len(self.word), dtype=np.int64)
        np.minimum.at(earliest, doc[top], first[top])
        chosen = top & (first == earliest[doc])
        out[doc[chosen]] = (self.chars(first[chosen], n) + n - 1) * size[chosen]
        return out

    def duplicate_chars(self, n: int) -> np.ndarray:
        """Per document: characters of repeated n-grams under datatrove's greedy scan."""
        out = np.zeros(self.num_docs, dtype=np.int64)
        start, groups = self.groups(n)
        repeat = np.flatnonzero(~groups.first)
        if len(repeat) == 0:
            return out
        number = groups.number[repeat]
        first_pos = start[groups.first_position[number]]
        pos = start[repeat]
        chars = self.chars(pos, n)
        doc = self.doc[pos]
        # Where no two repeats overlap and no first occurrence starts inside a repeat, the
        # scan visits and counts every repeat: sum them. The other documents are scanned.
        close = np.zeros(len(pos), dtype=bool)
        close[1:] = (np.diff(pos) < n) & (doc[1:] == doc[:-1])
        before = np.searchsorted(pos, first_pos) - 1  # the last repeat before each first
        inside = (before >= 0) & (pos[np.maximum(before, 0)] + n > first_pos) \
            & (doc[np.maximum(before, 0)] == doc)
        tangled = np.zeros(self.num_docs, dtype=bool)
        tangled[doc[close | inside]] = True
        simple = ~tangled[doc]
        out += np.bincount(doc[simple], weights=chars[simple], minlength=self.num_docs
                           ).astype(np.int64)
        rest = np.flatnonzero(~simple)
        if len(rest) == 0:
            return out
        pos, number, first_pos, chars, doc = (pos[rest], number[rest], first_pos[rest],
                                              chars[rest], doc[rest])
        bounds = np.flatnonzero(np.concatenate(([True], doc[1:] != doc[:-1], [True])))
        pos_l, number_l, first_l, chars_l = (pos.tolist(), number.tolist(), first_pos.tolist(),
                                             chars.tolist())
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            out[doc[lo]] = _greedy(pos_l[lo:hi], number_l[lo:hi], first_l[lo:hi],
                                   chars_l[lo:hi], n)
        return out


def _greedy(pos: list[int], ids: list[int], first_pos: list[int], chars: list[int],
            n: int) -> int:
    """Characters counted by the greedy scan, given one document's repeated n-grams.

    A position is visited unless it lies strictly inside a counted n-gram; a visited
    repeat counts when an earlier occurrence of its n-gram was visited. The first
    occurrence of an n-gram is visited unless it lies inside a counted n-gram.
    """
    counted: list[int] = []
    seen: set[int] = set()
    total, i, end = 0, 0, len(pos)
    while i < end:
        gram = ids[i]
        if gram in seen:
            known = True
        else:
            k = bisect_left(counted, first_pos[i]) - 1
            known = not (k >= 0 and counted[k] + n > first_pos[i])
        seen.add(gram)
        if known:
            total += chars[i]
            counted.append(pos[i])
            # Repeats starting inside this one are jumped over: neither counted nor seen.
            i = bisect_left(pos, pos[i] + n, i + 1)
        else:
            i += 1
    return total

"""BERT-style tokenization of a whole batch at once: segments split in numpy, each distinct
segment tokenized once by the model's own tokenizer and remembered.

A BERT tokenizer (``BertNormalizer`` -> ``BertPreTokenizer`` -> ``WordPiece``) decides where
words end from single characters: whitespace separates words and yields nothing, each
punctuation mark or CJK ideograph is a word by itself, every other character belongs to the
word around it; normalization (cleaning, lowercasing, accent stripping) maps characters one
at a time. So the token ids of a text are the concatenation of the ids of its *segments*
(maximal runs of word characters, and single isolated characters), each tokenized alone.

:class:`SegmentTokenizer` finds the segments of every text of a batch with array operations
over the UTF-8 bytes, hashes each segment (64 bits), and tokenizes only segments it has not
seen before, with the tokenizer itself; web text repeats its words, so after a few batches
almost every segment is a lookup. The class of each code point (separator, isolated, word)
is not written down here: it is asked of the tokenizer's own normalizer and pre-tokenizer
(:meth:`SegmentTokenizer._probe`, once per code point seen), so it follows the tokenizer's
Unicode tables. Texts it cannot vouch for are left to the caller (``fallback``): a code
point the probe cannot classify, an added token's text (``[MASK]`` is matched before
normalization), or a cut prefix with too few whole segments to fill ``max_seq_length``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.dedup.code_points import MAX_CODE_POINT, decode
from operators.hashing import splitmix64

log = logging.getLogger(__name__)

WORD, SEPARATOR, ISOLATED, UNSAFE, UNKNOWN = 0, 1, 2, 3, 255
MAX_CACHED_SEGMENTS = 2_000_000
"""Distinct segments remembered per process (about 100 MB at most); the cache restarts above it."""



def supports(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` (``tokenizers.Tokenizer``) splits words the way this module needs."""
    spec = json.loads(tokenizer.to_str())
    normalizer = (spec.get("normalizer") or {}).get("type")
    return (normalizer in (None, "BertNormalizer") and (spec.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
            and (spec.get("model") or {}).get("type") == "WordPiece")


class SegmentTokenizer:
    """Token ids of many texts, as the tokenizer with special tokens and truncation gives them.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` for which :func:`supports` holds; it is used
            with neither padding nor truncation.
        max_seq_length: tokens kept per text, special tokens included.
        budget: code points of each text looked at; a text longer than that is cut, and its
            last segment dropped when the cut may have split it.
    """

    def __init__(self, tokenizer: Any, max_seq_length: int, budget: int) -> None:
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.no_truncation()
        empty = self._tok.encode("", add_special_tokens=True).ids
        one = self._tok.encode("a", add_special_tokens=True).ids
        body = self._tok.encode("a", add_special_tokens=False).ids
        # the post-processor wraps every text the same way: [CLS] ... [SEP] for BERT
        at = next((k for k in range(len(one) - len(body) + 1) if one[k:k + len(body)] == body), None)
        if not body or at is None or one[:at] + one[at + len(body):] != empty:
            raise ValueError("post-processor does not wrap texts in fixed special tokens")
        self._head = np.array(one[:at], dtype=np.int32)
        self._tail = np.array(one[at + len(body):], dtype=np.int32)
        self.limit = max_seq_length - len(self._head) - len(self._tail)
        self.budget = budget
        self._added = [t["content"] for t in json.loads(self._tok.to_str()).get("added_tokens") or []]
        self._classes = np.full(MAX_CODE_POINT + 1, UNKNOWN, dtype=np.uint8)
        self._classes[0xD800:0xE000] = UNSAFE  # surrogates never occur in valid UTF-8
        self._power_table = np.zeros(0, dtype=np.uint64)
        self._reset_cache()

    def _reset_cache(self) -> None:
        self._slots: dict[int, int] = {}
        self._token_offsets = np.zeros(1, dtype=np.int64)
        self._tokens = np.zeros(0, dtype=np.int32)

    # -- classes of code points ----------------------------------------------------------
    def _probe(self, code_point: int) -> int:
        """How the tokenizer treats ``code_point`` between two letters: as a separator, as a
        word of its own, as part of the word, or some other way (unsafe)."""
        text = self._tok.normalizer.normalize_str(f"a{chr(code_point)}a") if self._tok.normalizer else \
            f"a{chr(code_point)}a"
        pieces = [p for p, _ in self._tok.pre_tokenizer.pre_tokenize_str(text)]
        if pieces == ["a", "a"]:
            return SEPARATOR
        if len(pieces) == 1 and pieces[0].startswith("a") and pieces[0].endswith("a"):
            return WORD
        if len(pieces) == 3 and pieces[0] == "a" and pieces[2] == "a":
            return ISOLATED
        return UNSAFE

    def _classes_of(self, code_points: np.ndarray) -> np.ndarray:
        classes = self._classes[code_points]
        unknown = code_points[classes == UNKNOWN]
        if len(unknown):
            for cp in np.unique(unknown).tolist():
                self._classes[cp] = self._probe(cp)
            classes = self._classes[code_points]
        return classes

    def _powers(self, length: int) -> np.ndarray:
        """Odd powers ``P**i mod 2**64`` for places ``i < length`` (grown on demand)."""
        if len(self._power_table) < length:
            size = max(length, 2 * len(self._power_table))
            table = np.empty(size, dtype=np.uint64)
            table[0] = 1
            with np.errstate(over="ignore"):
                for i in range(1, size):  # once per process, a few thousand entries
                    table[i] = table[i - 1] * np.uint64(0x100000001B3)
            self._power_table = table
        return self._power_table

    # -- tokenizing -----------------------------------------------------------------------
    def __call__(self, texts: pa.Array) -> tuple[pa.ListArray, np.ndarray]:
        """Ids of each non-null text (``list<int32>``) and the rows left to the caller.

        Rows in the returned ``fallback`` index array have empty lists here.
        """
        n = len(texts)
        lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
        prefixes = pc.utf8_slice_codeunits(texts, 0, self.budget)
        if isinstance(prefixes, pa.ChunkedArray):
            prefixes = prefixes.combine_chunks()
        offset_type = np.int64 if pa.types.is_large_string(prefixes.type) else np.int32
        bufs = prefixes.buffers()
        offsets = np.frombuffer(bufs[1], dtype=offset_type)[prefixes.offset:prefixes.offset + n + 1].astype(np.int64)
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        data = data[:offsets[-1]]
        begin = int(offsets[0])

        # code points: one per lead byte (ASCII or a multi-byte sequence's first byte)
        body = data[begin:]
        leads = np.flatnonzero((body & 0xC0) != 0x80) + begin
        lead_bytes = data[leads]
        code_points = lead_bytes.astype(np.uint32)
        multi = lead_bytes >= 0xC0
        if multi.any():
            code_points[multi] = decode(data, leads[multi])[0]
        classes = self._classes_of(code_points)
        boundary = np.zeros(len(body) + 1, dtype=bool)
        boundary[offsets - begin] = True  # where each text's bytes begin

        unsafe_rows = np.zeros(0, dtype=np.int64)
        if (classes == UNSAFE).any():
            unsafe_rows = np.unique(np.searchsorted(offsets, leads[classes == UNSAFE], "right") - 1)
            classes = np.where(classes == UNSAFE, SEPARATOR, classes)
        # segment starts: an isolated character, or a word character after a non-word one
        keep = classes != SEPARATOR
        starts = boundary[leads - begin]
        starts[1:] |= classes[:-1] != WORD
        starts |= classes == ISOLATED
        kept = np.flatnonzero(keep)
        seg_first = np.flatnonzero(starts[kept])  # positions in `kept`
        seg_count = len(seg_first)
        seg_len = np.diff(np.append(seg_first, len(kept)))
        seg_begin = leads[kept[seg_first]]
        after = kept[seg_first + seg_len - 1] + 1  # the code point after each segment's last
        seg_end = np.append(leads, offsets[-1])[after]
        seg_doc = np.searchsorted(offsets, seg_begin, "right") - 1

        # a 64-bit key per segment: a polynomial hash of its code points, mixed with its length
        place = np.arange(len(kept), dtype=np.int64) - np.repeat(seg_first, seg_len)
        with np.errstate(over="ignore"):
            terms = (code_points[kept].astype(np.uint64) + np.uint64(1)) * self._powers(int(seg_len.max(initial=1)))[place]
            keys = splitmix64(np.add.reduceat(terms, seg_first) + seg_len.astype(np.uint64)) if seg_count else \
                np.zeros(0, np.uint64)
        slots = self._slots_of(keys, data, seg_begin, seg_end)
        tok_len = np.diff(self._token_offsets)[slots]

        # a cut text's last segment may continue past the cut: leave it out
        cut = lengths > self.budget
        if seg_count:
            last = np.ones(seg_count, dtype=bool)
            last[:-1] = seg_doc[1:] != seg_doc[:-1]
            split = last & cut[seg_doc] & (seg_end == offsets[seg_doc + 1]) & (classes[kept[seg_first]] == WORD)
            tok_len = np.where(split, 0, tok_len)
        per_doc = np.bincount(seg_doc, weights=tok_len, minlength=n).astype(np.int64)
        short = np.flatnonzero(cut & (per_doc < self.limit))
        fallback = np.union1d(np.union1d(unsafe_rows, short), self._added_rows(texts)).astype(np.int64)
        return self._assemble(n, slots, tok_len, seg_doc, fallback), fallback

    def _slots_of(self, keys: np.ndarray, data: np.ndarray, seg_begin: np.ndarray, seg_end: np.ndarray) -> np.ndarray:
        """The cache slot of each segment, tokenizing the segments not seen before."""
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        if len(self._slots) + len(unique) > MAX_CACHED_SEGMENTS:
            self._reset_cache()
        get = self._slots.get
        slots = np.fromiter((get(k, -1) for k in unique.tolist()), dtype=np.int64, count=len(unique))
        missing = np.flatnonzero(slots < 0)
        if len(missing):
            raw = data.tobytes() if len(missing) > 64 else None
            where = first[missing]
            texts = [(raw[b:e] if raw is not None else data[b:e].tobytes()).decode("utf-8")
                     for b, e in zip(seg_begin[where].tolist(), seg_end[where].tolist())]
            encode = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
            ids = [e.ids for e in encode(texts, add_special_tokens=False)]
            counts = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            base = len(self._token_offsets) - 1
            self._token_offsets = np.concatenate([self._token_offsets, self._token_offsets[-1] + np.cumsum(counts)])
            self._tokens = np.concatenate([self._tokens, np.fromiter((t for x in ids for t in x), dtype=np.int32,
                                                                     count=int(counts.sum()))])
            new = np.arange(base, base + len(missing), dtype=np.int64)
            slots[missing] = new
            self._slots.update(zip(unique[missing].tolist(), new.tolist()))
        return slots[inverse]

    def _added_rows(self, texts: pa.Array) -> np.ndarray:
        """Rows containing an added token's text, which the tokenizer matches before splitting."""
        rows = np.zeros(0, dtype=np.int64)
        for content in self._added:
            hit = pc.fill_null(pc.match_substring(texts, content, ignore_case=True), False)
            rows = np.union1d(rows, np.flatnonzero(hit.to_numpy(zero_copy_only=False)))
        return rows

    def _assemble(self, n: int, slots: np.ndarray, tok_len: np.ndarray, seg_doc: np.ndarray,
                  fallback: np.ndarray) -> pa.ListArray:
        """Concatenate each text's segment ids, truncate, wrap in the special tokens."""
        total = int(tok_len.sum())
        out_first = np.cumsum(tok_len) - tok_len  # each segment's first token in the flat list
        source = np.repeat(self._token_offsets[slots] - out_first, tok_len) + np.arange(total, dtype=np.int64)
        tokens = self._tokens[source]
        token_doc = np.repeat(seg_doc, tok_len)
        doc_count = np.bincount(token_doc, minlength=n).astype(np.int64)
        doc_first = np.cumsum(doc_count) - doc_count
        rank = np.arange(total, dtype=np.int64) - doc_first[token_doc]
        body = rank < self.limit
        kept_count = np.minimum(doc_count, self.limit)
        wrap = len(self._head) + len(self._tail)
        out_len = kept_count + wrap
        out_len[fallback] = 0
        out_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(out_len, out=out_offsets[1:])
        values = np.empty(int(out_offsets[-1]), dtype=np.int32)
        live = out_len > 0
        starts = out_offsets[:-1][live]
        for i, t in enumerate(self._head.tolist()):
            values[starts + i] = t
        for i, t in enumerate(self._tail.tolist()):
            values[out_offsets[1:][live] - len(self._tail) + i] = t
        body &= live[token_doc]
        values[out_offsets[token_doc[body]] + len(self._head) + rank[body]] = tokens[body]
        return pa.ListArray.from_arrays(pa.array(out_offsets.astype(np.int32)), pa.array(values))

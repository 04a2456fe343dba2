"""Planted duplicates of the sample: exact copies (in the same source or another source's
file) and near duplicates with a few words substituted or deleted (scripts/make_sample.py)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from sample_rows import Line, encode, file_name, record
from sample_text import jaccard, normalize, shingles

EXACT_VARIANTS = ("identical", "upper_ascii", "extra_whitespace", "trailing_newline",
                  "identical", "padded", "nfkc_ligature", "upper_and_whitespace")
NEAR_VOCAB = ("system", "value", "request", "option", "server", "module", "table", "file",
              "example", "default", "version", "user", "query", "command", "object", "list",
              "string", "field", "index", "path")


def upper_ascii(text: str) -> str:
    return text.translate({c: c - 32 for c in range(ord("a"), ord("z") + 1)})


def extra_whitespace(text: str) -> str:
    return text.replace(" ", "  ").replace("\n", " \n\t")


VARIANTS: dict[str, Callable[[str], str]] = {
    "identical": lambda t: t,
    "upper_ascii": upper_ascii,
    "extra_whitespace": extra_whitespace,
    "trailing_newline": lambda t: t + "\n",
    "padded": lambda t: "  \n" + t + " \n\n",
    "nfkc_ligature": lambda t: t.replace("fi", "\ufb01"),  # LATIN SMALL LIGATURE FI
    "upper_and_whitespace": lambda t: extra_whitespace(upper_ascii(t)),
}


def exact_variant(text: str, start: int, used: set[str]) -> tuple[str, str]:
    """The first variant from ``EXACT_VARIANTS[start]`` on that applies to ``text``.

    A variant applies when it is not in ``used`` (the variants of this text's other copies),
    changes the text (or is ``identical``) and keeps its normalized form; e.g.
    ``nfkc_ligature`` needs an "fi" to replace.
    """
    for offset in range(len(EXACT_VARIANTS)):
        name = EXACT_VARIANTS[(start + offset) % len(EXACT_VARIANTS)]
        copy = VARIANTS[name](text)
        if name not in used and normalize(copy) == normalize(text) and (
                name == "identical" or copy != text):
            used.add(name)
            return name, copy
    raise AssertionError("no exact-duplicate variant applies")


def plant_exact(originals: Sequence[Sequence[dict]]) -> list[Line]:
    """In-source copies of each source's originals; the first of each source gets two."""
    lines, variant_index = [], 0
    for position, doc in ((i, d) for group in originals for i, d in enumerate(group)):
        copies, used = (2 if position == 0 else 1), set()
        for n in range(1, copies + 1):
            variant, text = exact_variant(doc["text"], variant_index, used)
            variant_index += 1
            copy_id = f"{doc['id']}-dup{n}"
            lines.append(Line(encode(record(copy_id, text, doc["source"], doc["path"])),
                              "exact_duplicate_copies",
                              {"id": copy_id, "original_id": doc["id"], "variant": variant,
                               "byte_identical": text == doc["text"]}))
    return lines


def plant_cross_source(doc: dict, target: str) -> Line:
    copy_id = f"{doc['id']}-xsrc1"
    return Line(encode(record(copy_id, doc["text"], target, doc["path"])), "cross_source_copies",
                {"id": copy_id, "original_id": doc["id"], "original_file": file_name(doc["source"]),
                 "source": target})


def perturb(text: str, rng: random.Random) -> tuple[str, float]:
    """Substitute or delete 3-8% of the words, in runs of 1-3; returns text, edited fraction."""
    tokens = re.split(r"(\s+)", text)
    word_positions = [i for i in range(0, len(tokens), 2) if tokens[i]]
    target = max(1, round(len(word_positions) * rng.uniform(0.03, 0.08)))
    edited: set[int] = set()
    while len(edited) < target:
        start = rng.randrange(len(word_positions))
        for k in range(start, min(start + rng.randint(1, 3), len(word_positions))):
            if len(edited) < target:
                edited.add(k)
    for k in sorted(edited):
        i = word_positions[k]
        if rng.random() < 0.5:
            tokens[i] = ""
            if i + 1 < len(tokens):
                tokens[i + 1] = ""  # drop the following whitespace with the word
        else:
            choices = [w for w in NEAR_VOCAB if w != tokens[i].lower()]
            tokens[i] = rng.choice(choices)
    return "".join(tokens).strip(), len(edited) / len(word_positions)


def plant_near(doc: dict, rng: random.Random) -> Line:
    text, fraction = perturb(doc["text"], rng)
    if normalize(text) == normalize(doc["text"]):
        raise AssertionError(f"near duplicate of {doc['id']} is an exact duplicate")
    copy_id = f"{doc['id']}-near1"
    similarity = jaccard(shingles(text), shingles(doc["text"]))
    return Line(encode(record(copy_id, text, doc["source"], doc["path"])), "near_duplicates",
                {"id": copy_id, "original_id": doc["id"], "edit_fraction": round(fraction, 4),
                 "jaccard_word5": round(similarity, 4)})

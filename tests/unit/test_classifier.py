"""Unit tests of classifier_score: features, the model file format, scoring, model files in jobs/."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from jobs.models import ModelFileError, stage_model
from jobs.store import S3Options, Store
from jobs.train import model_bytes
from operators.quality.classifier_fit import validation_split
from operators.quality.classifier import ClassifierScore, ClassifierScoreConfig, EmbeddingSizeError
from operators.quality.classifier_model import (
    METADATA_KEY,
    ClassifierModel,
    ModelFormatError,
    NgramFeatures,
    ngram_features,
    token_hashes,
)

SMALL = NgramFeatures(buckets=1 << 12, max_ngram=2)


def ngram_model(link: str = "logistic") -> ClassifierModel:
    """A model liking 'good' words and disliking 'bad' ones (weights by hashing the words)."""
    weights = np.zeros(SMALL.buckets)
    for word, w in (("good", 3.0), ("great", 2.0), ("bad", -3.0), ("awful", -2.0)):
        weights[ngram_features(pa.array([word]), SMALL).columns] = w
    return ClassifierModel.from_dense("ngram", link, -0.25, weights, ngram=SMALL, training={"note": "test"})


def embedding_model(dimensions: int = 4) -> ClassifierModel:
    return ClassifierModel.from_dense("embedding", "logistic", 0.5, np.arange(1, dimensions + 1) / 10.0,
                                      dimensions=dimensions)


def with_header(table: pa.Table, **changes: object) -> pa.Table:
    head = json.loads(table.schema.metadata[METADATA_KEY])
    head.update(changes)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(head).encode()})


# -- features -------------------------------------------------------------------------------
def test_features_are_lowercased_unigram_and_bigram_counts_l2_normalized() -> None:
    rows = ngram_features(pa.array(["Hello hello, world!"]), NgramFeatures(1 << 20, 2))
    # hello x2, world, "hello hello", "hello world": counts 2, 1, 1, 1 over sqrt(7)
    assert sorted(np.round(rows.values * np.sqrt(7), 6)) == [1, 1, 1, 2]
    assert np.isclose(np.square(rows.values).sum(), 1.0)
    unigrams = ngram_features(pa.array(["hello world"]), NgramFeatures(1 << 20, 1))
    assert len(unigrams.columns) == 2


def test_feature_hashes_are_pinned() -> None:
    """Stored models depend on these exact buckets: changing them needs a new FORMAT_VERSION."""
    features = NgramFeatures(1 << 20, 2)
    assert ngram_features(pa.array(["hello"]), features).columns.tolist() == [160200]
    assert ngram_features(pa.array(["world"]), features).columns.tolist() == [938087]
    assert ngram_features(pa.array(["Hello World"]), features).columns.tolist() == [160200, 248354, 938087]


def test_features_do_not_depend_on_the_batch() -> None:
    texts = ["the quick brown fox", "", None, "jumps over the lazy dog", "Überall café naïve 2024 x_y"]
    together = ngram_features(pa.chunked_array([texts[:2], texts[2:]]), SMALL)
    for i, text in enumerate(texts):
        alone = ngram_features(pa.array([text], pa.string()), SMALL)
        mine = together.rows == i
        assert together.columns[mine].tolist() == alone.columns.tolist()
        assert np.allclose(together.values[mine], alone.values)


def test_tokens_are_unicode_word_runs_and_bigrams_stay_within_a_document() -> None:
    hashes, docs = token_hashes(pa.array(["a-b  c", "d"]))
    assert docs.tolist() == [0, 0, 0, 1]
    rows = ngram_features(pa.array(["a b", "c"]), SMALL)
    assert np.bincount(rows.rows).tolist() == [3, 1]  # no "b c" bigram across documents


def test_empty_and_null_texts_have_no_features() -> None:
    rows = ngram_features(pa.array(["", "  ,. ", None], pa.string()), SMALL)
    assert rows.num_rows == 3 and len(rows.rows) == 0


# -- the file format ------------------------------------------------------------------------
@pytest.mark.parametrize("make", [ngram_model, embedding_model])
def test_model_round_trips_through_its_parquet_file(make, tmp_path: Path) -> None:
    model = make()
    path = tmp_path / "m.parquet"
    path.write_bytes(model_bytes(model))
    back = ClassifierModel.from_table(pq.read_table(path))
    assert (back.kind, back.link, back.bias, back.ngram, back.dimensions, back.training) == \
        (model.kind, model.link, model.bias, model.ngram, model.dimensions, model.training)
    assert back.index.tolist() == model.index.tolist() and back.weight.tolist() == model.weight.tolist()
    assert back.content_sha256() == model.content_sha256()
    assert model_bytes(back) == path.read_bytes()  # the same model writes the same bytes


def test_only_nonzero_weights_are_stored() -> None:
    table = ngram_model().to_table()
    assert table.num_rows == 4 and table.column_names == ["index", "weight"]


def test_a_table_without_the_header_is_rejected_saying_what_is_expected() -> None:
    with pytest.raises(ModelFormatError, match="not a tamis classifier.*columns found: \\['text'\\].*train-classifier"):
        ClassifierModel.from_table(pa.table({"text": ["x"]}))


@pytest.mark.parametrize("changes, message", [
    ({"format": "something.else"}, "header format is 'something.else'"),
    ({"format_version": 99}, "format_version 99: this tamis reads version 1 only"),
    ({"bias": 1.0}, "content hash mismatch"),
    ({"kind": "tree"}, "content hash mismatch"),
])
def test_bad_headers_are_rejected(changes: dict, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        ClassifierModel.from_table(with_header(ngram_model().to_table(), **changes))


def test_changed_weights_fail_the_content_hash() -> None:
    table = ngram_model().to_table()
    weights = table["weight"].to_numpy().copy()
    weights[0] += 1
    tampered = table.set_column(1, "weight", pa.array(weights, pa.float32()))
    with pytest.raises(ModelFormatError, match="content hash mismatch"):
        ClassifierModel.from_table(tampered)


def test_wrong_column_types_and_bad_json_are_rejected() -> None:
    table = ngram_model().to_table()
    as_double = table.set_column(1, "weight", table["weight"].cast(pa.float64()))
    with pytest.raises(ModelFormatError, match="columns are"):
        ClassifierModel.from_table(as_double)
    with pytest.raises(ModelFormatError, match="not JSON"):
        ClassifierModel.from_table(table.replace_schema_metadata({METADATA_KEY: b"{nope"}))


def test_models_that_cannot_be_scored_are_refused() -> None:
    with pytest.raises(ModelFormatError, match="sorted, unique and in"):
        ClassifierModel("embedding", "logistic", 0.0, np.array([5]), np.array([1.0], np.float32), dimensions=4)
    with pytest.raises(ModelFormatError, match="finite"):
        ClassifierModel.from_dense("embedding", "logistic", float("nan"), np.ones(3), dimensions=3)
    with pytest.raises(ModelFormatError, match="needs ngram settings"):
        ClassifierModel.from_dense("ngram", "logistic", 0.0, np.ones(3), dimensions=3)


# -- the operator ---------------------------------------------------------------------------
def score(model: ClassifierModel, batch: pa.Table, **config: object) -> pa.Table:
    config.setdefault("model", "/m.parquet")
    return ClassifierScore(ClassifierScoreConfig(**config), artifact=model.to_table())(batch)


def test_ngram_scores_follow_the_weights_and_do_not_depend_on_the_batch() -> None:
    texts = ["good great stuff", "bad awful stuff", "neutral words only", ""]
    scores = score(ngram_model(), pa.table({"text": texts}))["quality_classifier_score"].to_pylist()
    assert scores[0] > 0.5 > scores[1]
    assert scores[2] == scores[3] == pytest.approx(1 / (1 + np.exp(0.25)))
    alone = [score(ngram_model(), pa.table({"text": [t]}))["quality_classifier_score"][0].as_py() for t in texts]
    assert alone == scores
    z = 3.0 / np.sqrt(5) + 2.0 / np.sqrt(5) - 0.25  # 3 unigrams + 2 bigrams, two with weights
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-z)))


def test_identity_link_returns_the_linear_score() -> None:
    out = score(ngram_model("identity"), pa.table({"text": ["good"]}))
    assert out["quality_classifier_score"][0].as_py() == pytest.approx(3.0 - 0.25)


def test_embedding_scores_nulls_and_column_name() -> None:
    batch = pa.table({"embedding": pa.array([[1, 0, 0, 0], None, [0, 0, 0, 1]], pa.list_(pa.float32())),
                      "quality_embed": [9.0, 9.0, 9.0]})
    out = score(embedding_model(), batch, input="embedding", column="quality_embed")
    got = out["quality_embed"].to_pylist()
    assert out.column_names == ["embedding", "quality_embed"]  # replaced in place
    assert got[1] is None
    assert got[0] == pytest.approx(1 / (1 + np.exp(-0.6))) and got[2] == pytest.approx(1 / (1 + np.exp(-0.9)))


def test_fixed_size_embeddings_and_empty_batches_score() -> None:
    fixed = pa.array([[1, 0, 0, 0]], pa.list_(pa.float32(), 4))
    assert score(embedding_model(), pa.table({"embedding": fixed}), input="embedding").num_rows == 1
    empty = pa.table({"text": pa.array([], pa.string())})
    assert score(ngram_model(), empty)["quality_classifier_score"].type == pa.float64()


def test_an_embedding_of_the_wrong_size_fails_clearly() -> None:
    batch = pa.table({"embedding": pa.array([[1.0, 2.0]], pa.list_(pa.float32()))})
    with pytest.raises(EmbeddingSizeError, match="an embedding of 2 values reached a model trained on 4"):
        score(embedding_model(), batch, input="embedding")


def test_model_kind_must_match_the_input() -> None:
    with pytest.raises(ModelFormatError, match="an embedding model cannot score input 'text'; set `input: embedding`"):
        score(embedding_model(), pa.table({"text": ["x"]}))
    with pytest.raises(ModelFormatError, match="got no model table for /m.parquet"):
        ClassifierScore(ClassifierScoreConfig(model="/m.parquet"))


def test_config_declares_its_columns_and_checks_the_score_name() -> None:
    config = ClassifierScoreConfig(model="s3://b/m.parquet", input="embedding", column="quality_edu")
    assert ClassifierScore.columns_read(config) == ("embedding",)
    assert ClassifierScore.columns_written(config) == ("quality_edu",)
    with pytest.raises(ValidationError, match="column"):
        ClassifierScoreConfig(model="/m", column="score")
    with pytest.raises(ValidationError, match="model"):
        ClassifierScoreConfig()


# -- model files in jobs/ -------------------------------------------------------------------
def test_stage_model_copies_the_file_into_the_store_under_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "models" / "m.parquet"
    path.parent.mkdir()
    path.write_bytes(model_bytes(ngram_model()))
    store = Store(str(tmp_path / "store"))
    staged = stage_model(ClassifierScore, ClassifierScoreConfig(model=str(path)), store, S3Options())
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert staged.sha256 == sha and staged.key == f"models/{sha}.parquet"
    assert (tmp_path / "store" / staged.key).read_bytes() == path.read_bytes()
    assert staged.info["model"] == str(path) and staged.info["model_kind"] == "ngram"


def test_stage_model_errors_name_the_uri_and_what_was_expected(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))

    def stage(uri: str, **config: object) -> None:
        stage_model(ClassifierScore, ClassifierScoreConfig(model=uri, **config), store, S3Options())

    missing = str(tmp_path / "none.parquet")
    with pytest.raises(ModelFileError, match=f"model {missing} not found; train one with `tamis train-classifier"):
        stage(missing)
    with pytest.raises(ModelFileError, match="give an absolute local path or an s3:// URI"):
        stage("models/m.parquet")
    text = tmp_path / "notes.parquet"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match=f"model {text} is not a Parquet file"):
        stage(str(text))
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": ["a"]}), other)
    with pytest.raises(ModelFileError, match=f"model {other}: not a tamis classifier"):
        stage(str(other))
    good = tmp_path / "m.parquet"
    good.write_bytes(model_bytes(ngram_model()))
    with pytest.raises(ModelFileError, match=f"model {good}: an ngram model cannot score input 'embedding'"):
        stage(str(good), input="embedding")


def test_validation_split_is_stratified_and_seeded() -> None:
    labels = np.array([1] * 30 + [0] * 70)
    held = validation_split(labels, 0.1, seed=3)
    assert labels[held].sum() == 3 and (1 - labels[held]).sum() == 7
    assert (validation_split(labels, 0.1, seed=3) == held).all()
    assert not (validation_split(labels, 0.1, seed=4) == held).all()


# -- tamis train-classifier's checks (before any training) ------------------------------------
def test_train_classifier_reports_unusable_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jobs.cli import main

    out = str(tmp_path / "m.parquet")
    assert main(["train-classifier", "--positive", str(tmp_path / "none*.jsonl"), "--negative", out, "--out", out]) == 2
    assert ("error: no JSONL file (.jsonl or .ndjson, plain or .gz, .zst, .bz2, .lz4) or Parquet file (.parquet, .pq) "
            f"matches ['{tmp_path}/none*.jsonl']") in capsys.readouterr().err
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "p.parquet")
    assert main(["train-classifier", "--positive", str(tmp_path / "p.parquet"), "--negative", out, "--out", out]) == 2
    assert "p.parquet: no 'text' column (columns: body)" in capsys.readouterr().err
    (tmp_path / "one.jsonl").write_text('{"text": "a b"}\nnot json\n{"text": ""}\n')
    both = ["--positive", str(tmp_path / "one.jsonl"), "--negative", str(tmp_path / "one.jsonl"), "--out", out]
    assert main(["train-classifier", *both]) == 2
    assert "need at least 2 positive and 2 negative examples, got 1 and 1" in capsys.readouterr().err
    assert main(["train-classifier", *both, "--validation-fraction", "1.5"]) == 2
    assert "--validation-fraction 1.5: expected a value in (0, 1)" in capsys.readouterr().err


def test_training_examples_skip_lines_json_cannot_decode(tmp_path: Path) -> None:
    from jobs.store import S3Options
    from jobs.train import read_examples

    deep = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"  # RecursionError in json.loads, not ValueError
    (tmp_path / "e.JSONL").write_text('{"text": "kept"}\n' + deep + '\n{"text": 1}\nnot json\n')
    assert read_examples([str(tmp_path)], S3Options(), "text", "text").texts == ["kept"]

"""embed through a real local Ray and a local store, with the bundled model on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.integration.conftest import read_output, read_rejected, run_config

pytestmark = pytest.mark.integration


def documents() -> list[dict[str, str]]:
    words = ("curation", "dedup", "tokenizer", "embedding", "cluster", "shard", "quality", "ray")
    docs = [{"id": f"d{i:02d}", "source": "a" if i % 2 else "b",
             "text": " ".join(words[(i * j) % len(words)] for j in range(5 + 37 * i))} for i in range(24)]
    docs += [
        {"id": "long", "source": "a", "text": "A long page about data pipelines. " * 800},  # 27 KB
        {"id": "word", "source": "a", "text": "x"},
        {"id": "unicode", "source": "b", "text": "数据整理和去重是预训练的关键步骤。Ünïcödé café " * 30},
        {"id": "empty", "source": "b", "text": ""},  # rejected by the read stage (read:empty_text)
    ]
    return docs


def test_pipeline_embeddings_equal_sentence_transformers_encode(ray_local: None, tmp_path: Path) -> None:
    docs = documents()
    assert len(docs[24]["text"]) > 20_000
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    raw = {"name": "embed", "store": str(tmp_path / "store"),
           "input": {"paths": [str(tmp_path / "in.jsonl")], "format": "jsonl"},
           "stages": [{"op": "embed"}],
           # one file (one model actor: startup dominates), several batches within it
           "execution": {"batch_rows": 8}}
    pipeline, state = run_config(tmp_path, raw, run_id="embed")
    assert [s["name"] for s in state["stages"]][-2:] == ["embed.tokenize", "embed.encode"]

    output = read_output(pipeline, state)
    assert "embed_token_ids" not in output.column_names
    kind = output.schema.field("embedding").type
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 384 and kind.value_type == pa.float16()
    assert read_rejected(pipeline).to_pylist() == [{"id": "empty", "drop_reason": "read:empty_text"}]

    from sentence_transformers import SentenceTransformer

    from operators.embedding.embed_model import model_path

    model = SentenceTransformer(str(model_path("all-MiniLM-L6-v2")), device="cpu", local_files_only=True)
    texts = {d["id"]: d["text"] for d in docs}
    ids = output["id"].to_pylist()
    assert sorted(ids) == sorted(i for i in texts if i != "empty")
    got = np.array(output["embedding"].to_pylist(), dtype=np.float64)
    want = model.encode([texts[i] for i in ids], normalize_embeddings=True).astype(np.float64)
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.999, dict(zip(ids, cosine.round(5)))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=2e-3)

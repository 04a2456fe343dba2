"""A composite's part is fingerprinted on the config fields it reads (``Part.fields``), so a
changed parameter reruns the first part that reads it and the parts after it, nothing before.

The tables below name, for each parameter, the first part to rerun; every later part reruns
too, since its fingerprint chains the one before (``upstream``). The sufficiency checks run
each ``minhash_dedup`` primitive on literal tables under configs its fingerprint cannot tell
apart, and require bit-identical output: a declaration that leaves out a field the part
reads fails there.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jobs.pipeline_load import PlannedStage
from operators.config_paths import config_path_problem, project_config
from operators import registry
from operators.base import FILE_COLUMN, Composite, Part
from operators.dedup.lsh import BAND, HASH, SCOPE, AssignComponent, LshBuckets, LshComponents
from operators.dedup.minhash import MinhashDedup
from operators.dedup.minhash_config import COMPONENT, MinhashDedupConfig
from operators.dedup.minhash_index import (AssignPrior, BloomProbe, IndexMatch, bloom_update, index_rows)
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.near_keep import KEEP, KeepApply, VerifyKeep
from tests.support.fingerprint_chains import chain, expected, leaf_paths, nested, part_name, plan, rerun


# --- minhash_dedup: parameter -> first part to rerun ---------------------------------------------

BANDS_GIVEN = {"lsh": {"bands": 14, "rows": 8}}
BASES: dict[str, dict[str, Any]] = {
    "default": {},  # no index; bands chosen from threshold, num_perm and verify
    "bands": BANDS_GIVEN,  # bands and rows given: threshold and verify no longer shape them
    "weight": {"lsh": {"false_negative_weight": 0.9}},  # verify no longer shapes the banding
    "exact": {"index": {"name": "web"}},
    "exact_bands": {"index": {"name": "web"}, **BANDS_GIVEN},
    "bloom": {"index": {"name": "web", "form": "bloom"}},
    "bloom_bands": {"index": {"name": "web", "form": "bloom"}, **BANDS_GIVEN},
}

MINHASH_RERUNS: list[tuple[str, dict[str, Any], str | None]] = [
    # base, change, first part to rerun (None: nothing reruns)
    ("default", {"threshold": 0.7}, "signature"),  # through banding()
    ("default", {"ngram": 3}, "signature"),
    ("default", {"char_ngram": 4}, "signature"),
    ("default", {"num_perm": 128}, "signature"),
    ("default", {"scope": "global"}, "buckets"),
    ("default", {"verify": False}, "signature"),  # banding()'s default false-negative weight
    ("default", {"keep": "max:score"}, "keep"),
    ("default", {"map_digits": True}, "signature"),
    ("default", {"lsh.bands": 16, "lsh.rows": 7}, "signature"),
    ("default", {"lsh.false_negative_weight": 0.9}, "signature"),
    ("default", {"lsh.seed": 2}, "signature"),
    ("default", {"lsh.scheme": "datasketch"}, "signature"),
    ("default", {"components.method": "distributed"}, None),  # the same components either way
    ("default", {"components.max_single_edges": 1000}, None),
    ("default", {"index.form": "bloom"}, None),  # no index name: no index
    ("default", {"max_hops": 1}, "keep"),
    ("default", {"max_hops": None}, "keep"),
    ("default", {"index.update": False}, None),  # read by jobs/ after the run, by no part
    ("default", {"index.compact_segments": 4}, None),
    ("default", {"index.bloom_capacity": 5000}, None),
    ("default", {"index.bloom_fp_rate": 1e-3}, None),
    ("bands", {"threshold": 0.7}, "keep"),
    ("bands", {"verify": False}, "signature"),  # without verify no sketches are written
    ("bands", {"num_perm": 128}, "signature"),
    ("bands", {"lsh.rows": 7}, "signature"),
    ("bands", {"lsh.false_negative_weight": 0.9}, None),
    ("weight", {"verify": False}, "signature"),
    ("weight", {"threshold": 0.7}, "signature"),
    ("exact", {"index.name": "other"}, "index_match"),
    ("exact", {"index.update": False}, None),
    ("exact", {"index.compact_segments": 4}, None),  # how jobs/ writes the next version
    ("exact", {"index.bloom_capacity": 5000}, None),
    ("exact", {"index.bloom_fp_rate": 1e-3}, None),
    ("exact", {"threshold": 0.7}, "signature"),
    ("exact", {"scope": "global"}, "buckets"),
    ("exact", {"keep": "max:score"}, "keep"),
    ("exact", {"components.method": "distributed"}, None),
    ("exact_bands", {"threshold": 0.7}, "index_match"),  # the match verifies at the threshold
    ("exact_bands", {"verify": False}, "index_match"),
    ("exact_bands", {"num_perm": 128}, "signature"),
    ("bloom", {"index.name": "other"}, "index_probe"),
    ("bloom", {"index.bloom_capacity": 5000}, "index_probe"),
    ("bloom", {"index.bloom_fp_rate": 1e-3}, "index_probe"),
    ("bloom", {"index.update": False}, None),
    ("bloom", {"threshold": 0.7}, "signature"),
    ("bloom", {"keep": "max:score"}, "keep"),
    ("bloom_bands", {"threshold": 0.7}, "keep"),  # the probe does not verify
    ("bloom_bands", {"verify": False}, "signature"),
]


@pytest.mark.parametrize("base,changes,first", MINHASH_RERUNS,
                         ids=[f"{b}:{','.join(c)}" for b, c, _ in MINHASH_RERUNS])
def test_minhash_dedup_reruns_from_the_first_part_that_reads_the_parameter(
        base: str, changes: dict[str, Any], first: str | None) -> None:
    changed, names = rerun("minhash_dedup", BASES[base], changes)
    assert changed == expected(names, first)


def test_the_minhash_table_covers_every_parameter() -> None:
    covered = {path for base, changes, _ in MINHASH_RERUNS if base == "default" for path in changes}
    # index.name changes the part list: test_turning_the_index_on_* below
    assert leaf_paths(MinhashDedupConfig) - covered == {"index.name"}


def test_turning_a_bloom_index_on_reuses_everything_before_the_probe() -> None:
    off = chain(plan("minhash_dedup", {}))
    bloom = chain(plan("minhash_dedup", BASES["bloom"]))
    assert list(bloom) == ["signature", "buckets", "components", "assign", "index_probe", "keep", "apply"]
    for name in ("signature", "buckets", "components", "assign"):
        assert bloom[name] == off[name], name
    assert bloom["keep"] != off["keep"]


def test_an_exact_index_reruns_the_signature_which_then_writes_the_sketch() -> None:
    off = chain(plan("minhash_dedup", {}))
    exact = chain(plan("minhash_dedup", BASES["exact"]))
    bloom = chain(plan("minhash_dedup", BASES["bloom"]))
    assert list(exact) == ["signature", "buckets", "components", "assign", "index_match", "index_assign", "keep",
                           "apply"]
    assert exact["signature"] != off["signature"] and exact["signature"] != bloom["signature"]


def test_parts_without_fields_keep_todays_fingerprint() -> None:
    stage = PlannedStage("x", MinhashSignature, MinhashDedupConfig(), None, 0)  # type: ignore[arg-type]
    assert stage.fingerprint_config() == MinhashDedupConfig().model_dump(mode="json")


def test_fingerprint_config_keeps_nested_fields_nested() -> None:
    keep = next(s for s in plan("minhash_dedup", {}) if part_name(s) == "keep")
    assert keep.fingerprint_config() == {"keep": "min_id", "verify": True, "max_hops": 2, "threshold": 0.8, "ngram": 5,
                                         "char_ngram": None, "map_digits": False, "lsh": {"scheme": "fast"},
                                         "index": {"name": None}}
    assert project_config({"calibrate": None, "rules": {"a": 1, "b": 2}}, ("calibrate.max_documents", "rules.b")) \
        == {"calibrate": None, "rules": {"b": 2}}


# --- embed -----------------------------------------------------------------------------------------

EMBED_RERUNS: list[tuple[dict[str, Any], str | None]] = [
    ({"model": "some-other-model"}, "tokenize"),
    ({"max_seq_length": 128}, "tokenize"),
    ({"chars_per_token": 4.0}, None),  # sizes the first prefix tried; the ids are the same
    ({"dtype": "float32"}, "encode"),
    ({"batch_size": 64}, "encode"),  # float16 vectors may differ in the last bit with the batch
    ({"device": "cpu"}, "encode"),
]


@pytest.mark.parametrize("changes,first", EMBED_RERUNS, ids=[",".join(c) for c, _ in EMBED_RERUNS])
def test_embed_reruns_from_the_first_part_that_reads_the_parameter(changes: dict[str, Any],
                                                                   first: str | None) -> None:
    changed, names = rerun("embed", {}, changes)
    assert names == ["tokenize", "encode"]
    assert changed == expected(names, first)


def test_the_embed_table_covers_every_parameter() -> None:
    from operators.embedding.embed import EmbedConfig

    assert {path for changes, _ in EMBED_RERUNS for path in changes} == leaf_paths(EmbedConfig)


# --- the other composites where a part reads less than the whole config ---------------------------

RANKED = {"criterion": "ranked", "target_removal": 0.1}
CALIBRATED = {"calibrate": {"reference_source": "wiki"}}
OTHER_RERUNS: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    # a new target reruns the eps fit, not the pairwise similarities
    ("semantic_dedup", RANKED, {"target_removal": 0.2}, "eps"),
    ("semantic_dedup", RANKED, {"eps": 0.1}, None),  # ignored with a target
    ("semantic_dedup", RANKED, {"block_rows": 512}, "semantic_dedup"),
    ("text_quality_score", CALIBRATED, {"rule_columns": False}, "score"),
    ("text_quality_score", CALIBRATED, {"calibrate.max_documents": 10}, "calibrate"),
    ("text_quality_score", CALIBRATED, {"rules.min_words": 5}, "calibrate"),
    ("quantiles", {"columns": ["a"]}, {"sample_size": 1000}, "fit"),
    ("quantiles", {"columns": ["a"]}, {"by": "source"}, "fit"),
    ("kmeans", {}, {"niter": 5}, "fit"),
    ("kmeans", {}, {"device": "cpu"}, None),  # where the same centroids are computed
    ("cluster_prune", {}, {"fraction": 0.1}, "plan"),
    ("exact_dedup", {}, {"scope": "global"}, "hash"),
    ("exact_dedup", {"index": {"name": "web"}}, {"scope": "global"}, "hash"),
    ("exact_dedup", {"index": {"name": "web"}}, {"index.name": "other"}, "index_match"),
    ("exact_dedup", {"index": {"name": "web"}}, {"index.update": False}, None),  # read by jobs/ after the run
    ("exact_dedup", {"index": {"name": "web"}}, {"index.compact_segments": 4}, None),
    ("exact_dedup", {}, {"index.update": False}, None),  # no index name: no index
]


@pytest.mark.parametrize("op,base,changes,first", OTHER_RERUNS,
                         ids=[f"{o}:{','.join(c)}" for o, _, c, _ in OTHER_RERUNS])
def test_other_composites_rerun_from_the_first_part_that_reads_the_parameter(
        op: str, base: dict[str, Any], changes: dict[str, Any], first: str | None) -> None:
    changed, names = rerun(op, base, changes)
    assert changed == expected(names, first)


# --- every declared path exists -----------------------------------------------------------------

COMPOSITE_CONFIGS: dict[str, list[dict[str, Any]]] = {
    "minhash_dedup": list(BASES.values()),
    "embed": [{}],
    "exact_dedup": [{}, {"index": {"name": "web"}}],
    "quantiles": [{"columns": ["a"]}],
    "kmeans": [{}],
    "cluster_prune": [{}],
    "semantic_dedup": [{}, RANKED],
    "text_quality_score": [{}, CALIBRATED, {"calibrate": {"label_column": "good"}}],
    "mix": [{"budget_tokens": 1000.0}, {"budget_tokens": 1.0, "policy": "weights", "weights": {"a": 1.0}},
            {"phases": [{"name": "main", "budget_tokens": 900.0}]}],
}


@pytest.mark.parametrize("op", sorted(COMPOSITE_CONFIGS))
def test_every_declared_field_exists_in_the_parts_config(op: str) -> None:
    cls = registry.get(op)
    assert isinstance(cls, type) and issubclass(cls, Composite)
    for raw in COMPOSITE_CONFIGS[op]:
        for part in cls.parts(cls.Config(**raw)):
            for path in part.fields or ():
                assert config_path_problem(type(part.config), path) is None, (op, part.suffix, path)
            assert part.fields is None or len(set(part.fields)) == len(part.fields), (op, part.suffix)


def test_every_composite_is_checked() -> None:
    registry.load_builtin()
    composites = {n for n in registry.names() if isinstance(registry.get(n), type)
                  and issubclass(registry.get(n), Composite)}
    assert composites == set(COMPOSITE_CONFIGS)


def test_a_declared_field_that_does_not_exist_fails_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    def parts(cls: type, config: MinhashDedupConfig) -> tuple[Part, ...]:
        return (Part("signature", MinhashSignature, config, ("lsh.seeds",)),)

    monkeypatch.setattr(MinhashDedup, "parts", classmethod(parts))
    with pytest.raises(TypeError, match=r"part 'signature'.*'lsh.seeds'.*LshConfig has no field"):
        plan("minhash_dedup", {})
    assert config_path_problem(MinhashDedupConfig, "keep.x") == "keep is not a sub-config"
    assert config_path_problem(MinhashDedupConfig, "index.form") is None


# --- sufficiency: what a part's fingerprint cannot tell apart, its output does not either --------

WORDS = [f"w{i}" for i in range(300)]


def text(seed: int, n: int = 80) -> list[str]:
    return [str(w) for w in np.random.default_rng(seed).choice(WORDS, size=n)]


def edited(words: list[str], *positions: int) -> str:
    out = list(words)
    for p in positions:
        out[p] = "changed"
    return " ".join(out)


def corpus() -> pa.Table:
    """A dozen documents: near-copies within and across sources (Jaccard of 5-grams 0.88 and,
    for d02, 0.77), copies that differ only in their digits, unrelated ones, an empty one."""
    a, b, c = text(1), text(2), text(3, 60)
    rows = [("d00", " ".join(a), "web"), ("d01", edited(a, 40), "web"), ("d02", edited(a, 10, 60), "web"),
            ("d03", edited(a, 70), "books"), ("d04", " ".join(b), "books"), ("d05", edited(b, 5), "books"),
            ("d06", edited(b, 30, 31), "books"), ("d07", " ".join(c + [str(n) for n in range(11, 31)]), "web"),
            ("d08", " ".join(c + [str(n) for n in range(41, 61)]), "books"), ("d09", " ".join(text(4)), "web"),
            ("d10", " ".join(text(5, 20)), "web"), ("d11", "  ...  ", "web")]
    ids, texts, sources = zip(*rows)
    return pa.table({"id": list(ids), "text": list(texts), "source": list(sources),
                     "score": [float(i % 5) for i in range(len(rows))]})


KEEP_COMPONENTS = ["d00"] * 4 + ["d04"] * 3 + ["d07"] * 2 + ["d09"] * 2 + [None]
"""Candidate components handed to keep: besides the near-copies, a borderline pair (d02),
copies apart only in digits (d07, d08) and an LSH false positive (d09, d10), so that the
threshold, the shingles, map_digits and verify all change keep's decisions."""


def earlier() -> pa.Table:
    """Documents an earlier run kept: a near-copy of d00's text and an unrelated one."""
    return pa.table({"id": ["old-1", "old-2"], "text": [edited(text(1), 20), " ".join(text(9))],
                     "source": ["web", "web"]})


def with_file(table: pa.Table) -> pa.Table:
    return table.append_column(FILE_COLUMN, pa.array(["f1"] * 6 + ["f2"] * (table.num_rows - 6)))


def grouped(op: Any, rows: pa.Table) -> pa.Table:
    """Rows as jobs/ hands them to a group operator: sorted by key, then id."""
    return rows.sort_by([(k, "ascending") for k in (*op.group_key(), "id")])


class Inputs:
    """Every part's input, computed once with the base config; then each part is run alone."""

    def __init__(self, config: MinhashDedupConfig) -> None:
        self.docs = corpus()
        self.signed = MinhashSignature(config)(self.docs)
        buckets = LshBuckets(config)
        self.edges = buckets(grouped(buckets, buckets.project(with_file(self.signed))))
        self.components = LshComponents(config).fit(iter([self.edges]))
        self.assigned = AssignComponent(config, artifact=self.components)(self.signed)
        self.matched = self.assigned
        if config.index.name:
            old = MinhashSignature(config)(earlier())
            if config.index.form == "exact":
                self.index = index_rows(old, config)
                self.matches = self.run_match(config)[1]
                self.matched = AssignPrior(config, artifact=self.matches)(self.assigned)
            else:
                self.bloom = bloom_update(None, old, config)
                self.matched = BloomProbe(config, artifact=self.bloom)(self.assigned)
        keep = VerifyKeep(config)
        candidates = self.matched.set_column(self.matched.column_names.index(COMPONENT), COMPONENT,
                                             pa.array(KEEP_COMPONENTS, pa.string()))
        self.keep_input = grouped(keep, with_file(candidates))
        self.marks = keep(self.keep_input).drop_columns([FILE_COLUMN])

    def run_match(self, config: MinhashDedupConfig) -> tuple[pa.Table, pa.Table]:
        op = IndexMatch(config)
        projected = op.project(with_file(self.assigned))
        rows = pa.concat_tables([projected, op.state_project(self.index)])
        return projected, op(rows.sort_by([(SCOPE, "ascending"), (BAND, "ascending"), (HASH, "ascending"),
                                           ("id", "ascending")]))

    def run(self, part: str, config: MinhashDedupConfig) -> tuple[pa.Table, ...]:
        """Part ``part`` with ``config`` on its base input: every table it produces."""
        runners: dict[str, Callable[[], tuple[pa.Table, ...]]] = {
            "signature": lambda: (MinhashSignature(config)(self.docs),),
            "buckets": lambda: self._buckets(config),
            "components": lambda: (LshComponents(config).fit(iter([self.edges])),),
            "assign": lambda: (AssignComponent(config, artifact=self.components)(self.signed),),
            "index_match": lambda: self.run_match(config),
            "index_assign": lambda: (AssignPrior(config, artifact=self.matches)(self.assigned),),
            "index_probe": lambda: (BloomProbe(config, artifact=self.bloom)(self.assigned),),
            "keep": lambda: (VerifyKeep(config)(self.keep_input),),
            "apply": lambda: (KeepApply(config, artifact=self.marks)(self.matched),),
        }
        return runners[part]()

    def _buckets(self, config: MinhashDedupConfig) -> tuple[pa.Table, pa.Table]:
        op = LshBuckets(config)
        projected = op.project(with_file(self.signed))
        return projected, op(grouped(op, projected))


def alternative(path: str, dump: dict[str, Any]) -> dict[str, Any]:
    """A valid change of ``path`` from the config ``dump`` (bands and rows change together)."""
    lsh = dump["lsh"]
    value = project_config(dump, (path,))
    for key in path.split("."):
        value = value[key]
    flips: dict[str, Any] = {
        "threshold": 0.7, "ngram": 3, "char_ngram": None if value else 4, "num_perm": 128,
        "scope": "global" if value == "source" else "source", "verify": not value, "keep": "max:score",
        "max_hops": 2 if value == 1 else 1,
        "map_digits": not value, "lsh.seed": 2, "lsh.scheme": "datasketch",
        "lsh.false_negative_weight": None if value else 0.9, "components.method": "distributed",
        "components.max_single_edges": 1000, "index.name": "other" if value else "web",
        "index.form": "bloom" if value == "exact" else "exact", "index.update": not value,
        "index.bloom_capacity": 5000, "index.bloom_fp_rate": 1e-3, "index.compact_segments": 4,
    }
    if path in ("lsh.bands", "lsh.rows"):
        bands, rows = (lsh["bands"], lsh["rows"]) if lsh["bands"] else (18, 6)
        return {"lsh.bands": bands + 2 if path == "lsh.bands" else bands, "lsh.rows": rows - 1}
    return {path: flips[path]}


@pytest.mark.parametrize("base", sorted(BASES))
def test_a_part_whose_fingerprint_does_not_change_gives_the_same_output(base: str) -> None:
    config = MinhashDedupConfig(**BASES[base])
    inputs = Inputs(config)
    assert inputs.edges.num_rows and not all(inputs.marks[KEEP].to_pylist())  # there is work to check
    if config.index.name:
        assert any(pc.fill_null(inputs.matched["dedup_minhash_prior_match"], False).to_pylist())
    stages = {part_name(s): s for s in plan("minhash_dedup", BASES[base])}
    outputs = {name: inputs.run(name, config) for name in stages}
    dump = config.model_dump(mode="json")
    compared: dict[str, set[str]] = {name: set() for name in stages}
    for path in sorted(leaf_paths(MinhashDedupConfig)):
        changes = alternative(path, dump)
        other = nested(changes, BASES[base])
        other_stages = {part_name(s): s for s in plan("minhash_dedup", other)}
        for name, stage in stages.items():
            if name not in other_stages or other_stages[name].fingerprint_config() != stage.fingerprint_config():
                continue  # the part reruns (or is not there): nothing to require
            got = inputs.run(name, MinhashDedupConfig(**other))
            assert all(a.equals(b) for a, b in zip(outputs[name], got)), (name, changes)
            compared[name].add(path)
    # every part was compared under a change of each field it does not declare
    for name, stage in stages.items():
        declared = set(stage.config_fields or ())
        untouched = {p for p in leaf_paths(MinhashDedupConfig) if not declared & set(alternative(p, dump))}
        assert untouched <= compared[name] | {"index.name", "index.form"}, (name, untouched - compared[name])

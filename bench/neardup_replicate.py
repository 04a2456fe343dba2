"""A K-times larger near-dup corpus from an existing one, with exact ground truth, cheaply.

    python bench/neardup_replicate.py /tmp/nd100k /tmp/nd1m 10
    python bench/neardup.py --corpus /tmp/nd1m --docs 1000000 --skip-datasketch

Building a corpus with bench/neardup_corpus.py holds every document and sketch in memory
(126 s and several GB at 100,000 documents). Replica k here copies every document with id
``r<k>-<id>`` and source ``<source>~r<k>``, so under ``scope: source`` (the default) the
replicas never meet: the truth is K disjoint copies of the original truth, while the
pipeline still reads, signs, shuffles and clusters K times the documents. What this does not
test: duplicates across replicas (none exist by construction), and, under ``scope: global``,
the truth would be wrong (every document would have K-1 exact copies).
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path


def replicate(src: Path, dst: Path, times: int) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    shards = sorted(src.glob("part-*.jsonl.gz"))
    n = 0
    for k in range(times):
        for s, shard in enumerate(shards):
            out = dst / f"part-{k * len(shards) + s:05d}.jsonl.gz"
            with gzip.open(shard, "rt", encoding="utf-8") as f_in, \
                    gzip.GzipFile(out, "wb", compresslevel=1, mtime=0) as raw, io.TextIOWrapper(raw, "utf-8") as f_out:
                for line in f_in:
                    doc = json.loads(line)
                    doc["id"], doc["source"] = f"r{k}-{doc['id']}", f"{doc['source']}~r{k}"
                    f_out.write(json.dumps(doc, ensure_ascii=False) + "\n")
                    n += 1
        print(f"replica {k + 1}/{times} written ({n:,} documents so far)", flush=True)
    truth = json.loads((src / "truth.json").read_text())
    truth["clusters"] = [[f"r{k}-{d}" for d in c] for k in range(times) for c in truth["clusters"]]
    truth["planted"] = [{**p, "copy": f"r{k}-{p['copy']}", "original": f"r{k}-{p['original']}"}
                        for k in range(times) for p in truth["planted"]]
    stats = truth["stats"]
    for key in ("docs", "bytes", "base_docs", "planted_copies", "true_clusters", "docs_in_true_clusters",
                "docs_to_remove", "true_edges", "candidate_pairs", "candidate_pairs_lsh"):
        if key in stats:
            stats[key] *= times
    stats["replicated"] = {"from": str(src), "times": times}
    (dst / "truth.json").write_text(json.dumps(truth))


if __name__ == "__main__":
    replicate(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))

"""Time demo-model pre-training and check its she/he accuracy over several seeds.

Run: ``python3 benchmarks/bench_demo_pretrain.py [masked|causal|both] [n_seeds]``. Prints, per
seed, the steps until the early stop, training seconds, the test-slice accuracy and the accuracy on
a fresh corpus. Targets on 2 idle cores: masked ≥ 95% in ≤ ~30 s, causal ≥ 90% in ≤ ~60 s.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from gradiend.data.demo_corpus import generate_demo_corpus
from gradiend.demo.pretrain import build_demo_model, pronoun_accuracy


def main(kinds: list[str], n_seeds: int = 3) -> None:
    corpus = generate_demo_corpus(6000, seed=0)
    fresh = generate_demo_corpus(1000, seed=777)
    for kind in kinds:
        for seed in range(n_seeds):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                path = build_demo_model(kind, Path(tmp) / "model", corpus, seed=seed)
                total = time.perf_counter() - start
                info = json.loads((path / "pretraining.json").read_text())
                seconds = json.loads((path / "timing.json").read_text())["train_seconds"]
                print(f"{kind} seed {seed}: {info['steps']} steps, train {seconds:.1f} s "
                      f"(build+train+save {total:.1f} s), test accuracy "
                      f"{info['test_she_he_accuracy']:.3f}, fresh-corpus accuracy "
                      f"{pronoun_accuracy(path, fresh):.3f}", flush=True)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    main(["masked", "causal"] if which == "both" else [which], int(sys.argv[2]) if len(sys.argv) > 2 else 3)

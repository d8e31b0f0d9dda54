"""Time data creation on 100k sentences with string filters (no spaCy).

Run: ``python3 benchmarks/bench_data_creation.py [n_sentences]``. Prints seconds per step; the goal
is under a minute on 2 cores for 100k sentences.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from gradiend.data.creator import TextPredictionDataCreator
from gradiend.data.demo_corpus import generate_demo_corpus
from gradiend.data.filter_config import TextFilterConfig


def main(n_sentences: int = 100_000) -> None:
    start = time.perf_counter()
    corpus = generate_demo_corpus(n_sentences, seed=0)
    print(f"corpus: {len(corpus)} sentences generated in {time.perf_counter() - start:.2f} s")

    creator = TextPredictionDataCreator(
        base_data=corpus,
        feature_targets=[
            TextFilterConfig(targets=["he", "she", "it"], id="3SG"),
            TextFilterConfig(targets=["they"], id="3PL"),
        ],
        seed=42,
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        training = creator.generate_training_data(format="unified", output=Path(tmp) / "training.parquet")
        t_train = time.perf_counter() - start
        start = time.perf_counter()
        neutral = creator.generate_neutral_data(output=Path(tmp) / "neutral.parquet")
        t_neutral = time.perf_counter() - start
    print(f"generate_training_data (unified, written with summary.json): {t_train:.2f} s, {len(training)} rows "
          f"{creator.report['rows_per_class']}")
    print(f"generate_neutral_data (written): {t_neutral:.2f} s, {len(neutral)} rows")
    print(f"total: {t_train + t_neutral:.2f} s for {n_sentences} sentences")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)

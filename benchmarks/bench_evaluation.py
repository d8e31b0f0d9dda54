"""Evaluation cost as ratios: encoder evaluation vs a plain forward, decoder grid vs reloading per cell.

For each model (the tiny demo BERT and a random BERT-base-shaped model; CPU unless CUDA is there):

  encoder  -- ``EncoderEvaluator.encoded_frame("test")``: building the training + neutral rows and
              encoding them all by the batched JVP path, per encoded row, against the floor: a
              batched no-grad forward of the same rows (target: <= 4x);
  decoder  -- ``DecoderEvaluator.evaluate_grid`` over G cells + base (one loaded model, each rewrite
              applied in place and restored, inputs tokenized once, base scored once), against
              "reload": the base model reloaded from disk for every cell, rewrite applied to the
              fresh copy, scorers shared (a lower bound for any reloading scheme), and
              "job": one independent job per cell (reload, tokenize, score base and cell), the
              way a per-cell job without these reuses works (target: <= 0.5x).

No assertions: absolute times depend on the machine; the ratios are what to compare. CPU time of
this process is printed beside wall time (it barely moves when other processes share the cores).

    python3 benchmarks/bench_evaluation.py [--models tiny,bert-base] [--cells 8] [--repeats 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gradiend.data.creator import TextPredictionDataCreator  # noqa: E402
from gradiend.data.demo_corpus import generate_demo_corpus  # noqa: E402
from gradiend.data.filter_config import TextFilterConfig  # noqa: E402
from gradiend.data.ingest import load_training_table  # noqa: E402
from gradiend.demo.models import build_random_like, build_tiny_masked_lm  # noqa: E402
from gradiend.evaluation.context import EvaluationParts  # noqa: E402
from gradiend.evaluation.decoder import DecoderEvaluator  # noqa: E402
from gradiend.evaluation.encoder import EncoderEvaluator  # noqa: E402
from gradiend.cells import default_learning_rates  # noqa: E402
from gradiend.model.loading import load_base_model  # noqa: E402
from gradiend.model.with_gradiend import ModelWithGradiend  # noqa: E402
from gradiend.model.text import TextModelWithGradiend  # noqa: E402
from timing import timed  # noqa: E402


def tables(per_class: int, neutral: int):
    creator = TextPredictionDataCreator(
        base_data=generate_demo_corpus(6000, seed=3),
        feature_targets=[TextFilterConfig(targets=["she"], id="she"), TextFilterConfig(targets=["he"], id="he")],
        seed=0)
    table = load_training_table(data=creator.generate_training_data(max_size_per_class=per_class),
                                target_classes=["she", "he"], random_state=0)
    return table, creator.generate_neutral_data(max_size=neutral, additional_excluded_words=["her", "his", "him"])



def bench_model(label: str, path: Path, table, neutral, cells: int, repeats: int, device: str,
                batch_size: int) -> dict:
    torch.manual_seed(0)
    mwg = ModelWithGradiend.from_pretrained(str(path), source="alternative", device=device,
                                            feature_class_encoding_direction={"she": 1, "he": -1})
    parts = EvaluationParts(mwg, table, neutral, batch_size=batch_size)
    encoder = EncoderEvaluator(parts)
    frame = encoder.encoded_frame("test")

    def floor():
        with torch.no_grad():
            for start in range(0, len(frame), parts.batch_size):
                chunk = frame.iloc[start:start + parts.batch_size]
                batch = mwg.prepare(list(chunk["masked"]), list(chunk["factual"]))
                mwg.objective.scored_logits(mwg.base_model, batch)

    encode = timed(lambda: encoder.encoded_frame("test"), repeats)
    forward = timed(floor, repeats)

    decoder = DecoderEvaluator(parts)
    lrs = default_learning_rates()[-cells:]

    def in_place():
        decoder._base = None  # score the base cell too, as a fresh job would
        decoder.evaluate_grid(lrs, [1.0])

    def reloading(fresh_job: bool):
        """Every cell loads the base model from disk; a fresh job also re-tokenizes its inputs and
        re-scores the base model (it needs the base LMS for selection) instead of sharing them."""
        gradiend = mwg.gradiend
        for lr in [None, *lrs]:
            model, tokenizer, objective = load_base_model(path, device=device)
            fresh = TextModelWithGradiend(model, gradiend, tokenizer, objective, source=mwg.source, target=mwg.target,
                                      feature_class_encoding_direction=mwg.feature_class_encoding_direction)
            if fresh_job:
                job = DecoderEvaluator(EvaluationParts(fresh, table, neutral, batch_size=parts.batch_size))
                job.evaluate_base()
                if lr is not None:
                    job.evaluate_cell(lr, 1.0)
                continue
            if lr is not None:
                fresh.rewrite_base_model(lr, 1.0, inplace=True)
            decoder.probabilities(model)
            decoder.lms(model)

    decoder.evaluate_base()  # build the scorers once, outside both timings
    grid = timed(in_place, repeats)
    reload = timed(lambda: reloading(False), repeats)
    job = timed(lambda: reloading(True), repeats)
    return {"model": label, "rows": len(frame), "cells": len(lrs) + 1, "encode": encode, "floor": forward,
            "grid": grid, "reload": reload, "job": job}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,bert-base")
    parser.add_argument("--cells", type=int, default=8, help="learning rates in the timed grid (plus base)")
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--neutral", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 gives stable numbers when other jobs share the cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    table, neutral = tables(args.per_class, args.neutral)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.models.split(","):
            start = time.perf_counter()
            path = (build_tiny_masked_lm(Path(tmp) / label, seed=0) if label == "tiny"
                    else build_random_like(label, Path(tmp) / label, seed=0))
            results.append(bench_model(label, path, table, neutral, args.cells, args.repeats, device, args.batch))
            print(f"[{label}: {time.perf_counter() - start:.0f} s]", file=sys.stderr)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    header = (f"{'model':<10} {'clock':<5} {'rows':>5} {'encode ms/row':>13} {'floor ms/row':>12} {'enc/floor':>9} "
              f"{'cells':>5} {'grid s':>7} {'reload s':>8} {'job s':>7} {'grid/reload':>11} {'grid/job':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        for clock, i in (("wall", 0), ("cpu", 1)):
            enc, flo = 1e3 * r["encode"][i] / r["rows"], 1e3 * r["floor"][i] / r["rows"]
            grid, reload, job = r["grid"][i], r["reload"][i], r["job"][i]
            print(f"{r['model']:<10} {clock:<5} {r['rows']:>5} {enc:>13.2f} {flo:>12.2f} {enc / flo:>9.2f} "
                  f"{r['cells']:>5} {grid:>7.2f} {reload:>8.2f} {job:>7.2f} {grid / reload:>11.2f} {grid / job:>8.2f}")


if __name__ == "__main__":
    main()

"""Encoder cost per example: batched JVP vs one backward per example vs a plain forward.

For each model (the tiny demo BERT and a random BERT-base-shaped model, CPU), one batch of
sentence-length demo rows, and a tangent over all backbone parameters (as the encoder weight is):

  (a) jvp    -- ``jvp_directional``: every row's ``w · ∇L_row`` from one forward-mode pass
  (b) plain  -- ``per_example_gradient_dot``: one forward + backward per row, dot with ``w``
  (c) floor  -- a batched no-grad forward of the same scored logits (what any encoding must pay)

and prints time per example, a/c (target <= 4) and b/a (target >= 2). Also shown: the full
Hugging Face forward (every position through the LM head) for reference. No assertions: absolute
times depend on the machine; the ratios are what to compare. Run:

    python3 benchmarks/bench_encoding.py [--models tiny,bert-base] [--batch 32] [--repeats 3]
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

from gradiend.data.demo_corpus import generate_demo_corpus  # noqa: E402
from gradiend.demo.models import build_random_like, build_tiny_masked_lm  # noqa: E402
from gradiend.model.backbone import mapped_parameters  # noqa: E402
from gradiend.model.loading import load_base_model  # noqa: E402
from gradiend.objectives import jvp_directional, per_example_gradient_dot  # noqa: E402
from timing import timed  # noqa: E402

_SWAP = {"she": "he", "he": "she", "his": "her", "her": "his", "they": "she", "them": "her", "their": "his"}


def demo_rows(n: int):
    """``n`` masked rows (first pronoun of a sentence, all its occurrences masked) from the demo corpus."""
    import re

    pattern = re.compile(r"\b(she|he|his|her|they|them|their)\b", re.IGNORECASE)
    masked, factual, alternative = [], [], []
    for text in generate_demo_corpus(4 * n, seed=1):
        match = pattern.search(text)
        if match and len(masked) < n:
            word = match.group(1)
            masked.append(re.sub(rf"\b{word}\b", "[MASK]", text, flags=re.IGNORECASE))
            factual.append(word)
            alternative.append(_SWAP[word.lower()])
    return masked, factual, alternative



def bench_model(label: str, path: Path, batch_size: int, repeats: int, plain_rows: int) -> dict:
    model, tokenizer, objective = load_base_model(path)
    batch = objective.prepare(tokenizer, *demo_rows(batch_size))
    params = mapped_parameters(model)
    generator = torch.Generator().manual_seed(0)
    tangent = {n: torch.randn(p.shape, generator=generator) for n, p in params.items()}
    plain_batch = batch.select(range(plain_rows))

    def floor():
        with torch.no_grad():
            objective.scored_logits(model, batch)

    def full_forward():
        with torch.no_grad():
            model(**batch.inputs)

    per_example = {
        "jvp": (timed(lambda: jvp_directional(model, tangent, objective, batch, "factual"), repeats), batch_size),
        "plain": (timed(lambda: per_example_gradient_dot(model, tangent, objective, plain_batch, "factual"), 1), plain_rows),
        "floor": (timed(floor, repeats), batch_size),
        "full": (timed(full_forward, repeats), batch_size),
    }
    result = {"model": label, "params": sum(p.numel() for p in params.values()), "tokens": tuple(batch.inputs["input_ids"].shape)}
    for name, ((wall, cpu), rows) in per_example.items():
        result[name] = 1e3 * wall / rows
        result[name + "_cpu"] = 1e3 * cpu / rows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,bert-base")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--plain-rows", type=int, default=8, help="rows timed on the plain path (its cost is per row)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.models.split(","):
            start = time.perf_counter()
            if label == "tiny":
                path = build_tiny_masked_lm(Path(tmp) / "tiny", seed=0)
            else:
                path = build_random_like(label, Path(tmp) / label, seed=0)
            print(f"[{label}: built in {time.perf_counter() - start:.0f} s]", file=sys.stderr)
            plain_rows = min(args.plain_rows, args.batch)
            results.append(bench_model(label, path, args.batch, args.repeats, plain_rows))
            print(f"[{label}: done after {time.perf_counter() - start:.0f} s]", file=sys.stderr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, ms per example")
    header = (
        f"{'model':<10} {'clock':<5} {'backbone params':>15} {'batch x len':>11} {'(a) jvp':>8} {'(b) plain':>9} "
        f"{'(c) floor':>9} {'full fwd':>8} {'a/c':>5} {'b/a':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
            a, b, c, full = (r[k + suffix] for k in ("jvp", "plain", "floor", "full"))
            print(
                f"{r['model']:<10} {clock:<5} {r['params']:>15,} {'%dx%d' % r['tokens']:>11} {a:>8.2f} {b:>9.2f} "
                f"{c:>9.2f} {full:>8.2f} {a / c:>5.2f} {b / a:>5.2f}"
            )


if __name__ == "__main__":
    main()

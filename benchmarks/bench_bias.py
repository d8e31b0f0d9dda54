"""Cost of the bias benchmarks (StereoSet + CrowS-Pairs) per model, on the tiny demo BERT and GPT-2
and on a random BERT-base-shaped masked LM (CPU unless CUDA is there).

Items are made from demo-corpus sentences with StereoSet's and CrowS-Pairs' shapes (intrasentence:
three sentences alone; intersentence: a context plus three continuations; CrowS: two sentences), so
sentence lengths are realistic. The measured seconds per item are extrapolated to the gender
subsets of the released files (StereoSet dev: 255 intrasentence + 242 intersentence items;
CrowS-Pairs: 262 gender pairs) and to the whole files (4229 items; 1508 pairs).

    python3 benchmarks/bench_bias.py [--models tiny-bert,tiny-gpt2,bert-base] [--items 40] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GENDER = {"stereoset": 255 + 242, "crows_pairs": 262}
FULL = {"stereoset": 2106 + 2123, "crows_pairs": 1508}


def items(n: int, seed: int = 0):
    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.evaluation.bias.formats import CrowsPair, StereoSetItem

    corpus = generate_demo_corpus(4000, seed=seed)
    rng = random.Random(seed)
    stereo = []
    for i in range(n):
        a, b, c, d = rng.sample(corpus, 4)
        subset = "intrasentence" if i % 2 == 0 else "intersentence"
        stereo.append(StereoSetItem(str(i), subset, "gender", "x", d if subset == "intersentence" else None, a, b, c))
    pairs = [CrowsPair(i, "gender", "stereo", *rng.sample(corpus, 2)) for i in range(n)]
    return {"stereoset": stereo, "crows_pairs": pairs}


def main() -> None:
    import torch

    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.demo.models import build_random_like, build_tiny_causal_lm, build_tiny_masked_lm
    from gradiend.evaluation.bias.scores import crows_pairs_scores, stereoset_scores
    from gradiend.evaluation.bias.likelihood import SentenceScorer
    from gradiend.model.loading import load_base_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny-bert,tiny-gpt2,bert-base")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = items(args.items)
    corpus = generate_demo_corpus(2000, seed=0)
    print(f"device cpu, {args.threads} thread(s), {args.items} StereoSet items and {args.items} CrowS pairs per model; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = Path(tmp) / name
            if name == "tiny-bert":
                build_tiny_masked_lm(folder, corpus, seed=0)
            elif name == "tiny-gpt2":
                build_tiny_causal_lm(folder, corpus, seed=0)
            else:
                build_random_like(name, folder, corpus=corpus, seed=0)
            model, tokenizer, _ = load_base_model(folder)
            row = [name]
            for bench, score in (("stereoset", stereoset_scores), ("crows_pairs", crows_pairs_scores)):
                scorer = SentenceScorer(model, tokenizer, batch_size=32)
                wall, cpu = time.perf_counter(), time.process_time()
                score(scorer, data[bench], bootstrap=1000)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                per = wall / len(data[bench])
                row.append(f"{bench}: {per * 1000:.1f} ms/item wall ({cpu / len(data[bench]) * 1000:.1f} CPU) -> "
                           f"gender {per * GENDER[bench]:.0f} s, full {per * FULL[bench]:.0f} s")
            print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()

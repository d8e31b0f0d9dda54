"""SEAT (May et al., 2019): the Sentence Encoder Association Test on a language model's sentence embeddings.

A test file (the released ``sent-weat*.jsonl`` of github.com/W4ngatang/sent-bias, one JSON object
per file despite the suffix) holds two target sets ``targ1`` / ``targ2`` (X, Y) and two attribute
sets ``attr1`` / ``attr2`` (A, B), each ``{"category": ..., "examples": [sentences]}``.

- Embedding: the final hidden state of the first token ([CLS]) for a masked LM, of the last token
  for a causal LM.
- ``s(w) = mean_a cos(w, a) − mean_b cos(w, b)``; effect size
  ``d = (mean_x s(x) − mean_y s(y)) / std_{w ∈ X ∪ Y} s(w)`` (sample standard deviation, ddof 1).
- One-sided p-value of ``Σ_x s(x) − Σ_y s(y)`` over equal-size re-partitions of X ∪ Y: exact when
  there are at most ``permutations`` partitions, otherwise ``permutations`` random ones (seeded).
- 95 % interval of ``d``: percentile bootstrap, X, Y, A and B each resampled with replacement.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gradiend.evaluation.bias.formats import BenchmarkFormatError, read_benchmark_file
from gradiend.evaluation.bias.scores import percentile_interval

SETS = ("targ1", "targ2", "attr1", "attr2")


@dataclass(frozen=True)
class SeatTest:
    name: str
    categories: tuple[str, str, str, str]
    sets: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # X, Y, A, B


def read_seat(path) -> SeatTest:
    """One SEAT test file; a file in another format is one error naming it."""
    path = Path(str(path)).expanduser()
    document = read_benchmark_file(path, str(path), "SEAT")
    if not isinstance(document, dict) or any(key not in document for key in SETS):
        raise BenchmarkFormatError(f"{path}: not the released SEAT format, which needs the keys {list(SETS)} "
                                   f"each with `examples`")
    categories, sets = [], []
    for key in SETS:
        block = document[key]
        examples = block.get("examples") if isinstance(block, dict) else None
        if not isinstance(examples, list) or len(examples) < 2 or not all(isinstance(e, str) and e.strip()
                                                                          for e in examples):
            raise BenchmarkFormatError(f"{path}: `{key}.examples` must list at least two non-empty sentences")
        categories.append(str(block.get("category", key)))
        sets.append(tuple(e.strip() for e in examples))
    return SeatTest(path.name.removesuffix(".jsonl").removesuffix(".json"), tuple(categories), tuple(sets))


@torch.no_grad()
def sentence_embeddings(model, tokenizer, sentences: Sequence[str], kind: str, batch_size: int = 32) -> np.ndarray:
    """Final hidden state of [CLS] (masked LM) or of the last token (causal LM), float64, one row per sentence."""
    from gradiend.evaluation.batching import chunks, model_device, pad_id, pad_right
    from gradiend.util.eval_mode import eval_mode

    rows = [list(tokenizer(s, add_special_tokens=True)["input_ids"]) for s in sentences]
    vectors, device = [], model_device(model)
    with eval_mode(model):
        for batch in chunks(rows, batch_size):
            ids, attention = pad_right(batch, pad_id(tokenizer))
            hidden = model(input_ids=ids.to(device), attention_mask=attention.to(device),
                           output_hidden_states=True).hidden_states[-1].double().cpu()
            index = torch.zeros(len(batch), dtype=torch.long) if kind == "masked" else attention.sum(1) - 1
            vectors.append(hidden[torch.arange(len(batch)), index].numpy())
    return np.concatenate(vectors) if vectors else np.zeros((0, 0))


def _effect_size(sx: np.ndarray, sy: np.ndarray) -> float:
    return float((sx.mean() - sy.mean()) / np.concatenate([sx, sy]).std(ddof=1))


def seat_test(embeddings: Sequence[np.ndarray], *, permutations: int = 10000, bootstrap: int = 1000,
              seed: int = 0) -> dict:
    """``{effect_size, p_value, n: [|X|, |Y|, |A|, |B|], ci: {effect_size}, exact_p}`` from the four embedding sets."""
    x, y, a, b = (m / np.linalg.norm(m, axis=1, keepdims=True) for m in embeddings)
    xa, xb, ya, yb = x @ a.T, x @ b.T, y @ a.T, y @ b.T  # cosine similarities of unit rows
    sx, sy = xa.mean(axis=1) - xb.mean(axis=1), ya.mean(axis=1) - yb.mean(axis=1)
    effect = _effect_size(sx, sy)
    together = np.concatenate([sx, sy])
    observed = sx.sum() - sy.sum()
    size, total = len(sx), together.sum()
    n_partitions = math.comb(len(together), size)
    rng = np.random.default_rng(seed)
    if n_partitions <= permutations:
        stats = [2 * together[list(chosen)].sum() - total for chosen in itertools.combinations(range(len(together)), size)]
    else:
        stats = [2 * together[rng.permutation(len(together))[:size]].sum() - total for _ in range(permutations)]
    # strictly larger than observed; the observed partition itself (equal up to rounding) does not count
    p_value = float(np.mean(np.array(stats) > observed + 1e-12 * max(1.0, abs(observed))))
    ci = None
    if bootstrap > 0:
        values = []
        boot = np.random.default_rng(seed)
        for _ in range(bootstrap):
            ix, iy, ia, ib = (boot.integers(0, len(m), len(m)) for m in (x, y, a, b))
            bx = xa[np.ix_(ix, ia)].mean(axis=1) - xb[np.ix_(ix, ib)].mean(axis=1)
            by = ya[np.ix_(iy, ia)].mean(axis=1) - yb[np.ix_(iy, ib)].mean(axis=1)
            spread = np.concatenate([bx, by]).std(ddof=1)
            values.append((bx.mean() - by.mean()) / spread if spread > 0 else 0.0)
        ci = percentile_interval(values)
    return {"effect_size": effect, "p_value": p_value, "exact_p": n_partitions <= permutations,
            "n": [len(x), len(y), len(a), len(b)], "ci": {"effect_size": ci}}


def seat_scores(model, tokenizer, tests: Sequence[SeatTest], kind: str, *, permutations: int = 10000,
                bootstrap: int = 1000, seed: int = 0, batch_size: int = 32) -> dict:
    """Every test's result and ``mean_abs_effect_size`` (the average |d|, as in the debiasing literature)."""
    results = {}
    for test in tests:
        embeddings = [sentence_embeddings(model, tokenizer, list(s), kind, batch_size) for s in test.sets]
        results[test.name] = {"categories": list(test.categories),
                              **seat_test(embeddings, permutations=permutations, bootstrap=bootstrap, seed=seed)}
    mean_abs = float(np.mean([abs(r["effect_size"]) for r in results.values()]))
    return {"mean_abs_effect_size": mean_abs, "n_tests": len(results), "tests": results}

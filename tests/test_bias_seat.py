"""SEAT: effect size, exact permutation p-value and bootstrap interval against a plain computation."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

from gradiend.evaluation.bias import BenchmarkFormatError, load_benchmarks, read_seat, run_benchmarks
from gradiend.model.loading import load_base_model
from tests.bias_support import SEAT, write_seat


def plain_embedding(model, tokenizer, sentence, kind):
    ids = tokenizer(sentence)["input_ids"]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0].double()
    return (hidden[0] if kind == "masked" else hidden[-1]).numpy()


def cos(u, v):
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_seat_equals_a_plain_computation(kind, tmp_path, tiny_masked_lm_dir, tiny_causal_lm_dir):
    model, tokenizer, _ = load_base_model(tiny_masked_lm_dir if kind == "masked" else tiny_causal_lm_dir)
    benchmarks = load_benchmarks({"seat": {"paths": [str(write_seat(tmp_path / "sent-weat6.jsonl"))]}})
    result = run_benchmarks(model, tokenizer, benchmarks, bootstrap=0, batch_size=2)["seat"]
    test = result["tests"]["sent-weat6"]
    emb = {key: [plain_embedding(model, tokenizer, s, kind) for s in SEAT[key]["examples"]] for key in SEAT}
    s = lambda w: (np.mean([cos(w, a) for a in emb["attr1"]])  # noqa: E731
                   - np.mean([cos(w, b) for b in emb["attr2"]]))
    sx, sy = [s(w) for w in emb["targ1"]], [s(w) for w in emb["targ2"]]
    both = sx + sy
    d = (np.mean(sx) - np.mean(sy)) / np.std(both, ddof=1)
    assert test["effect_size"] == pytest.approx(d, rel=1e-4)   # float32 forwards, padded vs alone
    observed = sum(sx) - sum(sy)
    stats = [sum(both[i] for i in c) - sum(both[i] for i in range(6) if i not in c)
             for c in itertools.combinations(range(6), 3)]
    assert test["exact_p"] and test["p_value"] == sum(v > observed + 1e-12 for v in stats) / math.comb(6, 3)
    assert test["n"] == [3, 3, 3, 3] and test["categories"] == ["FemaleNames", "MaleNames", "Family", "Career"]
    assert result["mean_abs_effect_size"] == pytest.approx(abs(d), rel=1e-4) and result["n_tests"] == 1
    assert test["ci"]["effect_size"] is None


def test_seat_bootstrap_interval(tmp_path, tiny_masked_lm_dir):
    model, tokenizer, _ = load_base_model(tiny_masked_lm_dir)
    benchmarks = {"seat": [read_seat(write_seat(tmp_path / "t.jsonl"))]}
    test = run_benchmarks(model, tokenizer, benchmarks, bootstrap=200)["seat"]["tests"]["t"]
    low, high = test["ci"]["effect_size"]
    # plain percentile bootstrap: X, Y, A, B each resampled with replacement (one seeded generator, in
    # that order), the effect size of each resample by cosine loops, the 2.5 / 97.5 percentiles
    x, y, a, b = ([plain_embedding(model, tokenizer, s, "masked") for s in SEAT[key]["examples"]]
                  for key in ("targ1", "targ2", "attr1", "attr2"))
    rng, values = np.random.default_rng(0), []
    for _ in range(200):
        ix, iy, ia, ib = (rng.integers(0, len(m), len(m)) for m in (x, y, a, b))
        s = lambda w: np.mean([cos(w, a[i]) for i in ia]) - np.mean([cos(w, b[i]) for i in ib])  # noqa: E731
        sx, sy = [s(x[i]) for i in ix], [s(y[i]) for i in iy]
        spread = np.std(sx + sy, ddof=1)
        values.append((np.mean(sx) - np.mean(sy)) / spread if spread > 0 else 0.0)
    assert [low, high] == pytest.approx(list(np.percentile(values, [2.5, 97.5])), abs=1e-4)


@pytest.mark.parametrize("content, message", [
    ("sent_more,sent_less\n", "not a SEAT JSON file"),
    (json.dumps({"targ1": {"examples": ["a b", "c d"]}}), "not the released SEAT format"),
    (json.dumps({**SEAT, "attr2": {"examples": ["only one"]}}), "`attr2.examples` must list at least two"),
])
def test_bad_seat_file_is_one_error_naming_it(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=message) as info:
        load_benchmarks({"seat": {"paths": [str(path)]}})
    assert str(path) in str(info.value)

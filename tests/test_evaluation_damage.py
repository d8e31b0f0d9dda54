"""Damage measures (LMS, KL to the base model, (pseudo-)perplexity) against a plain loop, one text at a time."""
import math
import random

import numpy as np
import pytest
import torch

from gradiend.evaluation.damage import DamageScorer
from gradiend.evaluation.lms import CausalLMS, MaskedLMS
from gradiend.evaluation.tokens import ignore_token_ids
from tests.evaluation_support import SENTENCES, tiny_bert, tiny_gpt2

BOOTSTRAP = 200


def _kl(base_logits, logits) -> float:
    p = torch.log_softmax(base_logits.double(), -1)
    q = torch.log_softmax(logits.double(), -1)
    return float((p.exp() * (p - q)).sum())


def _interval(values_of_resample, n, seed=42):
    """The percentile bootstrap written out: resample texts, recompute, take the 2.5 / 97.5 percentiles."""
    index = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP, n))
    return list(np.percentile([values_of_resample(row) for row in index], [2.5, 97.5]))


def test_masked_damage_equals_a_plain_loop():
    base, tokenizer = tiny_bert(0)
    other, _ = tiny_bert(1)  # a different model over the same tokenizer: every measure moves
    lms = MaskedLMS(tokenizer, SENTENCES, mask_ratio=0.4, seed=5, batch_size=3)
    scorer = DamageScorer(lms, base, bootstrap=BOOTSTRAP)
    nll, kl = [[] for _ in SENTENCES], [[] for _ in SENTENCES]
    with torch.no_grad():
        for i, (ids, positions) in enumerate(zip(lms.rows, lms.positions)):
            for p in positions:  # each LMS position masked alone, the text scored alone (no padding)
                masked = torch.tensor([ids[:p] + [tokenizer.mask_token_id] + ids[p + 1:]])
                logits, reference = other(masked).logits[0, p], base(masked).logits[0, p]
                nll[i].append(-float(torch.log_softmax(logits.double(), -1)[ids[p]]))
                kl[i].append(_kl(reference, logits))
    result = scorer(other)
    flat_nll, flat_kl = sum(nll, []), sum(kl, [])
    assert result["lms"] == lms(other)["lms"] and result["lms_details"] == lms(other)
    assert result["kl"] == pytest.approx(sum(flat_kl) / len(flat_kl), rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(sum(flat_nll) / len(flat_nll)), rel=1e-6)
    assert result["damage"]["perplexity_kind"] == "pseudo-perplexity"
    assert result["damage"]["n_kl_positions"] == result["damage"]["n_perplexity_tokens"] == len(flat_kl)

    # bootstrap over texts: each resample pools the chosen texts' positions
    def pooled(rows, per_text, transform=lambda x: x):
        values = [v for r in rows for v in per_text[r]]
        return transform(sum(values) / len(values))

    n = len(SENTENCES)
    ci = result["damage"]["ci"]
    assert ci["kl"] == pytest.approx(_interval(lambda rows: pooled(rows, kl), n), rel=1e-6)
    assert ci["perplexity"] == pytest.approx(_interval(lambda rows: pooled(rows, nll, math.exp), n), rel=1e-6)
    correct = lms.correct_per_text(other)
    expected_lms = _interval(lambda rows: sum(correct[r] for r in rows) / sum(len(lms.positions[r]) for r in rows), n)
    assert ci["lms"] == pytest.approx(expected_lms, rel=1e-9)
    # the base model against itself: no divergence at all
    itself = scorer(base)
    assert itself["kl"] == 0.0 and itself["damage"]["ci"]["kl"] == [0.0, 0.0]


def test_causal_damage_equals_a_plain_loop():
    base, tokenizer = tiny_gpt2(0)
    other, _ = tiny_gpt2(1)
    ignored = ignore_token_ids(tokenizer, ["she"])
    lms = CausalLMS(tokenizer, SENTENCES, ignore_token_ids=ignored, batch_size=4)
    scorer = DamageScorer(lms, base, seed=11, kl_ratio=0.3, bootstrap=BOOTSTRAP)
    nll, kl = [], []
    rng = random.Random(11)
    with torch.no_grad():
        for text in SENTENCES:
            ids = tokenizer(text)["input_ids"]
            logits, reference = other(torch.tensor([ids])).logits[0], base(torch.tensor([ids])).logits[0]
            scored = [t for t in range(len(ids) - 1) if ids[t + 1] not in ignored]  # predicts token t+1
            nll += [-float(torch.log_softmax(logits[t].double(), -1)[ids[t + 1]]) for t in scored]
            chosen = sorted(rng.sample(range(len(scored)), max(1, int(0.3 * len(scored)))))
            kl += [_kl(reference[scored[j]], logits[scored[j]]) for j in chosen]
    result = scorer(other)
    assert result["perplexity"] == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-6)
    assert result["lms"] == pytest.approx(1 / (1 + sum(nll) / len(nll)), rel=1e-6)
    assert result["lms_details"]["n_tokens"] == len(nll) == result["damage"]["n_perplexity_tokens"]
    assert result["kl"] == pytest.approx(sum(kl) / len(kl), rel=1e-6)
    assert result["damage"]["n_kl_positions"] == len(kl)
    assert result["damage"]["perplexity_kind"] == "perplexity"
    assert scorer(base)["kl"] == 0.0
    # a model that cannot be scored gives NaN measures and no interval
    with torch.no_grad():
        other.lm_head.weight.fill_(float("nan"))
    broken = scorer(other)
    assert math.isnan(broken["lms"]) and math.isnan(broken["kl"]) and broken["damage"]["ci"]["kl"] is None

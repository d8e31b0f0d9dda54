"""LMS: special tokens are never masked, the causal score is shifted, scoring is deterministic."""
import math

import pytest
import torch

from gradiend.evaluation.lms import CausalLMS, MaskedLMS, language_model_score, lm_kind, lms_scorer
from gradiend.evaluation.tokens import ignore_token_ids
from tests.evaluation_support import SENTENCES, tiny_bert, tiny_gpt2


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2()


def test_masked_lms_never_masks_special_tokens(bert):
    model, tokenizer = bert
    scorer = MaskedLMS(tokenizer, SENTENCES, mask_ratio=1.0, seed=3)
    special = set(tokenizer.all_special_ids)
    for ids, positions in zip(scorer.rows, scorer.positions):
        masked_tokens = {ids[p] for p in positions}
        assert not masked_tokens & special
        # with ratio 1.0 every non-special position is masked: exactly all but [CLS] and [SEP]
        assert positions == list(range(1, len(ids) - 1))
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def test_masked_lms_ratio_seed_and_ignore_list(bert):
    model, tokenizer = bert
    first = MaskedLMS(tokenizer, SENTENCES, seed=7)
    again = MaskedLMS(tokenizer, SENTENCES, seed=7)
    other = MaskedLMS(tokenizer, SENTENCES, seed=8)
    assert first.positions == again.positions
    assert first.positions != other.positions
    for ids, positions in zip(first.rows, first.positions):
        assert len(positions) == max(1, int(0.15 * (len(ids) - 2)))
    ignored = ignore_token_ids(tokenizer, ["the", "she"])
    scorer = MaskedLMS(tokenizer, SENTENCES, mask_ratio=1.0, ignore_token_ids=ignored)
    assert all(ids[p] not in ignored for ids, pos in zip(scorer.rows, scorer.positions) for p in pos)
    assert first(model) == again(model)


def test_masked_lms_counts_correct_predictions(bert):
    """A model that copies its input scores 0 on masks; one that knows the answer scores 1."""
    _, tokenizer = bert
    scorer = MaskedLMS(tokenizer, SENTENCES, mask_ratio=0.5, seed=1)

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.answers = {tuple(scorer.masked_inputs(i)): scorer.rows[i] for i in range(len(scorer.rows))}

        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            for b, row in enumerate(input_ids.tolist()):
                width = int(attention_mask[b].sum())
                answer = self.answers[tuple(row[:width])]
                logits[b, torch.arange(width), torch.tensor(answer)] = 1.0
            return type("Out", (), {"logits": logits})()

    assert scorer(Oracle())["lms"] == 1.0

    class Copier(Oracle):  # predicts the token it is shown: [MASK] at every scored position
        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            logits.scatter_(2, input_ids.unsqueeze(-1), 1.0)
            return type("Out", (), {"logits": logits})()

    assert scorer(Copier())["lms"] == 0.0


def test_causal_lms_equals_hand_computation(gpt2):
    model, tokenizer = gpt2
    texts = ["the chef tasted the soup", "she said that he was tired ."]
    result = language_model_score(model, tokenizer, texts, batch_size=2)
    nlls = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0]
            for t in range(len(ids) - 1):  # predict token t+1 from tokens ≤ t
                nlls.append(-torch.log_softmax(logits[t], -1)[ids[t + 1]].item())
    expected = 1 / (1 + sum(nlls) / len(nlls))
    assert result["n_tokens"] == len(nlls)
    assert result["lms"] == pytest.approx(expected, rel=1e-5)
    # the reference's unshifted score differs: make sure the test could tell them apart
    with torch.no_grad():
        ids = tokenizer(texts[0])["input_ids"]
        logits = model(torch.tensor([ids])).logits[0]
        unshifted = -torch.log_softmax(logits, -1)[torch.arange(len(ids)), torch.tensor(ids)].mean().item()
    assert abs(1 / (1 + unshifted) - expected) > 1e-3


def test_causal_lms_ignores_tokens_and_rejects_nan(gpt2):
    model, tokenizer = gpt2
    ignored = ignore_token_ids(tokenizer, ["she", "he"])
    assert ignored
    full = CausalLMS(tokenizer, SENTENCES)(model)
    partial = CausalLMS(tokenizer, SENTENCES, ignore_token_ids=ignored)(model)
    rows = [tokenizer(text)["input_ids"] for text in SENTENCES]
    assert full["n_tokens"] == sum(len(ids) - 1 for ids in rows)  # every token after the first is predicted
    assert partial["n_tokens"] == sum(t not in ignored for ids in rows for t in ids[1:]) < full["n_tokens"]
    # and the score is the mean NLL of exactly those tokens
    nlls = []
    with torch.no_grad():
        for ids in rows:
            logits = model(torch.tensor([ids])).logits[0]
            nlls += [-torch.log_softmax(logits[t], -1)[ids[t + 1]].item() for t in range(len(ids) - 1)
                     if ids[t + 1] not in ignored]
    assert partial["lms"] == pytest.approx(1 / (1 + sum(nlls) / len(nlls)), rel=1e-5)

    broken = tiny_gpt2()[0]
    with torch.no_grad():
        broken.lm_head.weight.fill_(float("nan"))
    assert math.isnan(CausalLMS(tokenizer, SENTENCES)(broken)["lms"])


def test_kind_detection_and_dispatch(bert, gpt2):
    assert lm_kind(*bert) == "masked"
    assert lm_kind(*gpt2) == "causal"
    assert isinstance(lms_scorer(*bert, SENTENCES), MaskedLMS)
    assert isinstance(lms_scorer(*gpt2, SENTENCES), CausalLMS)
    with pytest.raises(ValueError, match="unknown LM kind"):
        lms_scorer(*bert, SENTENCES, kind="seq2seq")


def test_scoring_runs_in_eval_mode_and_gives_the_caller_its_mode_back(gpt2):
    model, tokenizer = gpt2
    seen = []
    hooks = [m.register_forward_pre_hook(lambda module, args: seen.append(module.training)) for m in model.modules()]
    model.train()
    try:
        language_model_score(model, tokenizer, ["the chef tasted the soup"])
        assert seen and not any(seen)   # every module ran with dropout off
        assert model.training           # and the caller's training mode is back
    finally:
        for hook in hooks:
            hook.remove()
        model.eval()


def test_eval_mode_restores_the_mode_after_an_error():
    from gradiend.util.eval_mode import eval_mode

    layer = torch.nn.Dropout(0.5).train()
    with pytest.raises(RuntimeError), eval_mode(layer):
        assert not layer.training
        raise RuntimeError("scoring failed")
    assert layer.training
    with eval_mode(layer.eval()):
        pass
    assert not layer.training

"""The claims the project makes, each guarded by a fast test with a threshold a broken build misses.

* Training learns: a GRADIEND trained on she/he reaches |correlation| >= 0.9 on held-out rows, far
  above the untrained GRADIEND (a learning rate of 0 stays at the untrained value).
* The LMS measures the model: it equals a plain per-token loop written here, and it drops when the
  weights are scrambled.
* A rewrite goes the way it is named: strengthening `she` raises P(she) on held-out sentences about
  men, weakening lowers P(she) on held-out sentences about women, the LMS stays within the selection
  threshold, and this holds whichever sign the GRADIEND learned (a GRADIEND flipped during training
  by the sign normalisation rewrites the same way). P(she) is measured here with a plain loop over
  the test split, not with the library's scorer.

The models are the tiny demo models: a random tiny BERT / GPT-2 (built in seconds) already
separates she from he in its gradients; the pre-trained ones (cached across runs) know the pronouns,
so their LMS and probabilities mean something.
"""
from __future__ import annotations

import math

import pytest
import torch

from gradiend.evaluation.evaluator import Evaluator
from gradiend.evaluation.lms import language_model_score
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from tests.training_support import she_he_table

PRONOUNS = {"she", "he", "her", "his", "him", "hers", "they", "them", "their"}


def _train(model_dir, table, *, classes=("she", "he"), steps=30, lr=1e-3, seed=0, neutral=None):
    args = TrainingArguments(train_batch_size=16, max_steps=steps, eval_steps=10, learning_rate=lr, max_seeds=1,
                             encoder_eval_max_size=60, seed=seed)
    trainer = TextPredictionTrainer(str(model_dir), data=table, eval_neutral_data=neutral, args=args,
                                    target_classes=list(classes), progress=False)
    return trainer, trainer.train()


# ---------------------------------------------------------------------------------------------- learns
@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_training_learns_she_vs_he(kind, request, demo_corpus):
    model_dir = request.getfixturevalue(f"tiny_{kind}_lm_dir")
    table = she_he_table(demo_corpus, max_per_class=200, left_context=kind == "causal")
    _, result = _train(model_dir, table)
    history = {h["step"]: h for h in result.training["history"]}
    untrained = abs(history[0]["correlation"])
    best = history[result.training["best_step"]]
    assert abs(best["correlation"]) >= 0.9
    assert abs(best["correlation"]) - untrained >= 0.5, (untrained, best["correlation"])
    # the +1 class encodes to > +0.5, the -1 class to < -0.5 (sign normalisation included)
    assert best["mean_by_class"]["she"] > 0.5 and best["mean_by_class"]["he"] < -0.5
    assert result.converged


def test_a_learning_rate_of_zero_does_not_learn(demo_corpus, tiny_masked_lm_dir, monkeypatch):
    """The control for the test above: with the optimiser frozen the correlation stays where it began."""
    import gradiend.training.training_loop as loop

    make = loop.make_optimizer

    def frozen(parameters, args):
        optimizer = make(parameters, args)
        for group in optimizer.param_groups:
            group["lr"] = 0.0
        return optimizer

    monkeypatch.setattr(loop, "make_optimizer", frozen)
    table = she_he_table(demo_corpus, max_per_class=200)
    _, result = _train(tiny_masked_lm_dir, table)
    correlations = {round(h["correlation"], 6) for h in result.training["history"]}
    assert len(correlations) == 1 and abs(correlations.pop()) < 0.5
    assert not result.converged


# ------------------------------------------------------------------------------------------------- LMS
def _neutral_texts(corpus: list[str], n: int) -> list[str]:
    return [t for t in corpus if not set(t.lower().replace(".", " ").split()) & PRONOUNS][:n]


def _masked_lms_loop(model, tokenizer, texts, positions_of) -> float:
    """Accuracy at the given positions, one text and one forward at a time, no padding."""
    correct = total = 0
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        positions = positions_of(ids)
        if not positions:
            continue
        masked = [tokenizer.mask_token_id if i in positions else t for i, t in enumerate(ids)]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([masked])).logits[0]
        for p in positions:
            guess = tokenizer.convert_ids_to_tokens(int(logits[p].argmax()))
            correct += guess.lower() == tokenizer.convert_ids_to_tokens(ids[p]).lower()
            total += 1
    return correct / total


def _causal_mean_nll_loop(model, tokenizer, texts) -> float:
    """Mean NLL of each token given the tokens before it, one prefix at a time."""
    nll, count = 0.0, 0
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        for t in range(1, len(ids)):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1].double()
            nll -= float(torch.log_softmax(logits, dim=-1)[ids[t]])
            count += 1
    return nll / count


def _scrambled(model, seed=0):
    """The same architecture with every weight matrix's entries permuted: the knowledge is gone."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                flat = param.view(-1)
                flat.copy_(flat[torch.randperm(flat.numel(), generator=generator)])
    return model


def test_masked_lms_equals_a_plain_loop_and_drops_when_scrambled(pretrained_masked_lm_dir, demo_corpus):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from gradiend.evaluation.lms import MaskedLMS

    tokenizer = AutoTokenizer.from_pretrained(pretrained_masked_lm_dir)
    model = AutoModelForMaskedLM.from_pretrained(pretrained_masked_lm_dir).eval()
    texts = _neutral_texts(demo_corpus, 80)
    scorer = MaskedLMS(tokenizer, texts, seed=5)
    planned = {tuple(ids): set(pos) for ids, pos in zip(scorer.rows, scorer.positions)}
    # the positions are the scorer's seeded draw; which ones may be drawn is checked here independently
    for ids, positions in planned.items():
        assert all(0 < p < len(ids) - 1 for p in positions)
    plain = _masked_lms_loop(model, tokenizer, texts, lambda ids: planned.get(tuple(ids), set()))
    fast = scorer(model)["lms"]
    assert fast == pytest.approx(plain, abs=1.0 / scorer.n_masked), (fast, plain)
    assert plain >= 0.3  # the pre-trained model predicts neutral words well above chance
    scrambled = scorer(_scrambled(model))["lms"]
    assert scrambled < 0.5 * fast, (scrambled, fast)


def test_causal_lms_equals_a_plain_loop_and_drops_when_scrambled(pretrained_causal_lm_dir, demo_corpus):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pretrained_causal_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(pretrained_causal_lm_dir).eval()
    texts = _neutral_texts(demo_corpus, 30)
    result = language_model_score(model, tokenizer, texts)
    plain_nll = _causal_mean_nll_loop(model, tokenizer, texts)
    assert result["mean_nll"] == pytest.approx(plain_nll, rel=1e-4)
    assert result["lms"] == pytest.approx(1.0 / (1.0 + plain_nll), rel=1e-4)
    scrambled = language_model_score(_scrambled(model), tokenizer, texts)["lms"]
    assert scrambled < 0.8 * result["lms"], (scrambled, result["lms"])


# --------------------------------------------------------------------------------------------- rewrite
def _p_word_plain(model, tokenizer, rows, word: str, causal: bool) -> float:
    """Mean P(word) at the first mask of each row: a plain loop, one unpadded row at a time.

    The word takes the casing of the row's factual token (``She`` at a sentence start); a causal
    LM predicts it after the words before the mask, as the token with its leading space.
    """
    probabilities = []
    for masked, factual in zip(rows["masked"], rows["factual"]):
        form = word.capitalize() if factual[0].isupper() else word
        if causal:
            prefix = masked.split("[MASK]")[0]
            ids = tokenizer(prefix.rstrip())["input_ids"]
            target = tokenizer(" " + form)["input_ids"]
            assert len(target) == 1, f"{form!r} is not one token"
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        else:
            text = masked.replace("[MASK]", tokenizer.mask_token)
            ids = tokenizer(text)["input_ids"]
            target = tokenizer.convert_tokens_to_ids([form])
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, ids.index(tokenizer.mask_token_id)]
        probabilities.append(float(torch.softmax(logits.double(), dim=-1)[target[0]]))
    return sum(probabilities) / len(probabilities)


REWRITE_LRS = [0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005]


@pytest.fixture(scope="module", params=["masked", "causal"])
def rewrites(request, demo_corpus):
    """For each class order (she first, he first): the trained GRADIEND, the rewrites and P(she)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    kind = request.param
    model_dir = request.getfixturevalue(f"pretrained_{kind}_lm_dir")
    loader = AutoModelForCausalLM if kind == "causal" else AutoModelForMaskedLM
    table = she_he_table(demo_corpus, max_per_class=300, left_context=kind == "causal")
    neutral = _neutral_texts(demo_corpus, 200)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = loader.from_pretrained(model_dir).eval()
    test = table[table["split"] == "test"]
    men, women = test[test["factual_class"] == "he"], test[test["factual_class"] == "she"]
    outcome = {"kind": kind, "base": {"men": _p_word_plain(base, tokenizer, men, "she", kind == "causal"),
                                      "women": _p_word_plain(base, tokenizer, women, "she", kind == "causal")},
               "orders": {}}
    for order in (("she", "he"), ("he", "she")):
        trainer, result = _train(model_dir, table, classes=order, steps=60, neutral=neutral)
        evaluator = Evaluator(trainer)
        strengthen = evaluator.evaluate_decoder(lrs=REWRITE_LRS, target_class="she")["she"]
        weaken = evaluator.evaluate_decoder(lrs=REWRITE_LRS, target_class="she",
                                            increase_target_probabilities=False)["she_weaken"]
        up = evaluator.rewrite_base_model(target_class="she").eval()
        down = evaluator.rewrite_base_model(target_class="she", increase_target_probabilities=False).eval()
        outcome["orders"][order] = {
            "normalised": any(h.get("normalised") for h in result.training["history"]),
            "strengthen": strengthen, "weaken": weaken,
            "up_men": _p_word_plain(up, tokenizer, men, "she", kind == "causal"),
            "down_women": _p_word_plain(down, tokenizer, women, "she", kind == "causal"),
        }
    return outcome


def test_strengthen_raises_and_weaken_lowers_p_she_on_held_out_rows(rewrites):
    base = rewrites["base"]
    for order, outcome in rewrites["orders"].items():
        assert outcome["up_men"] >= base["men"] + 0.1, (order, base, outcome["up_men"])
        assert outcome["down_women"] <= base["women"] - 0.1, (order, base, outcome["down_women"])
        for entry in (outcome["strengthen"], outcome["weaken"]):
            assert not entry["fallback"], (order, entry)
            assert entry["lms"] >= 0.99 * entry["base_lms"]
            assert math.isfinite(entry["lms"]) and entry["lms"] > 0


def test_a_gradiend_flipped_in_training_rewrites_the_named_way(rewrites):
    """Swapping the class order swaps the sign the labels ask for, so exactly one of the two runs
    is flipped by the sign normalisation; both pass the test above, so the flip kept the meaning."""
    flips = [outcome["normalised"] for outcome in rewrites["orders"].values()]
    assert sorted(flips) == [False, True], flips


# ------------------------------------------------------------------------------------ held-out grid
def _cell_after_poisoning(finished, root, name, poison) -> dict:
    """Copy a finished experiment, rewrite its training table with ``poison(table)``, rescore cell ``name``."""
    import json
    import shutil

    import pandas as pd

    from tests.stages_support import StageRun

    copy = StageRun(finished.experiment, finished.corpus, root)
    shutil.copytree(finished.root, root)
    table_file = copy.path("data", "training.parquet")
    pd.read_parquet(table_file).pipe(poison).to_parquet(table_file)
    copy.decoder_cell(name)
    return json.loads(open(copy.cells()[name], encoding="utf-8").read())


def _garbled(split: str):
    """Every row of ``split`` gets one unrelated masked sentence; the other rows stay as they are."""
    def poison(table):
        table = table.copy()
        table.loc[table["split"] == split, "masked"] = "the soup was [MASK] ."
        return table
    return poison


def test_decoder_cells_score_held_out_test_rows_only(tmp_path, demo_corpus, tiny_masked_lm_dir):
    import json

    from tests.reliability_support import tiny_run

    run = tiny_run(tiny_masked_lm_dir, demo_corpus[:1000], tmp_path / "run")
    run.data()
    run.train(0)
    run.evaluate(0)
    run.select_seed()
    name = next(n for n in run.cells() if n != "base")
    run.decoder_cell(name)
    clean = json.loads(open(run.cells()[name], encoding="utf-8").read())
    assert clean["n_rows_by_dataset"] and all(n > 0 for n in clean["n_rows_by_dataset"].values())

    train_poisoned = _cell_after_poisoning(run, tmp_path / "train_poisoned", name, _garbled("train"))
    validation_poisoned = _cell_after_poisoning(run, tmp_path / "validation_poisoned", name, _garbled("validation"))
    test_poisoned = _cell_after_poisoning(run, tmp_path / "test_poisoned", name, _garbled("test"))
    assert train_poisoned == clean
    assert validation_poisoned == clean
    assert test_poisoned["probs_by_dataset"] != clean["probs_by_dataset"]

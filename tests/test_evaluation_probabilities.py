"""P(class tokens) matches hand computations: casing variants, multi-token targets, several masks, causal LM
(a multi-token word by the chain rule)."""
import math

import pandas as pd
import pytest
import torch

from gradiend.evaluation.probabilities import ClassProbabilityScorer, class_target_words
from gradiend.objectives import resolve_objective
from tests.evaluation_support import tiny_bert, tiny_gpt2


def rows(entries):
    return pd.DataFrame(entries, columns=["masked", "factual", "alternative", "factual_class", "alternative_class"])


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


def mask_probs(model, tokenizer, text):
    ids = tokenizer(text.replace("[MASK]", tokenizer.mask_token), return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0]
    positions = (ids["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    return torch.softmax(logits[positions].double(), -1)


def test_class_target_words_from_factual_and_alternative():
    table = rows([("a [MASK] b", "she", "he", "she", "he"), ("a [MASK] c", "He", "She", "he", "she"),
                  ("x [MASK] y", "him", "her", "he", "she")])
    assert class_target_words(table, ["she", "he"]) == {"she": ["she", "She", "her"], "he": ["He", "him", "he"]}
    with pytest.raises(ValueError, match="class 'it' has no target token"):
        class_target_words(table, ["she", "it"])


def test_masked_lm_single_multi_token_and_several_masks(bert):
    model, tokenizer = bert
    table = rows([
        ("the doctor said that [MASK] was tired .", "he", "she", "he", "she"),
        ("[MASK] said that [MASK] was happy .", "she", "he", "she", "he"),
    ])
    words = {"she": ["she", "hers"], "he": ["he"]}
    scorer = ClassProbabilityScorer(resolve_objective("masked_lm", model, tokenizer), tokenizer, table, words)
    result = scorer(model)
    tok = tokenizer.convert_tokens_to_ids
    # row 0, one mask: P(she) = p(she) + p(She) + p(her)·p(##s) on the two-mask input
    p1 = mask_probs(model, tokenizer, table.masked[0])[0]
    p2 = mask_probs(model, tokenizer, table.masked[0].replace("[MASK]", "[MASK][MASK]"))
    expected_she = p1[tok("she")] + p1[tok("She")] + p2[0, tok("her")] * p2[1, tok("##s")]
    expected_he = p1[tok("he")] + p1[tok("He")]
    assert result["probs_by_dataset"]["he"]["she"] == pytest.approx(float(expected_she), rel=1e-6)
    assert result["probs_by_dataset"]["he"]["he"] == pytest.approx(float(expected_he), rel=1e-6)
    # row 1, two masks: each mask scored with the first sub-token, then averaged
    p = mask_probs(model, tokenizer, table.masked[1])
    per_mask = p[:, tok("she")] + p[:, tok("She")] + p[:, tok("her")]
    assert result["probs_by_dataset"]["she"]["she"] == pytest.approx(float(per_mask.mean()), rel=1e-6)
    assert result["n_rows_by_dataset"] == {"he": 1, "she": 1}
    # restricting the datasets scores only those
    assert set(scorer(model, datasets=["he"])["probs_by_dataset"]) == {"he"}
    with pytest.raises(ValueError, match="no rows of dataset"):
        scorer(model, datasets=["it"])


def test_causal_lm_next_token_with_leading_space():
    model, tokenizer = tiny_gpt2()
    table = rows([
        ("the doctor said that [MASK] was tired .", "he", "she", "he", "she"),
        ("[MASK] went home .", "she", "he", "she", "he"),  # no left context: not scored
        ("maria went home and [MASK] read a book .", "she", "he", "she", "he"),
    ])
    scorer = ClassProbabilityScorer(resolve_objective("causal_lm", model, tokenizer), tokenizer, table,
                                    {"she": ["she"], "he": ["he"]})
    assert scorer.rows["masked"].tolist() == [table.masked[0], table.masked[2]]
    result = scorer(model)
    ids = tokenizer("the doctor said that")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)
    space_he = tokenizer(" he", add_special_tokens=False)["input_ids"]
    assert len(space_he) == 1
    assert result["probs_by_dataset"]["he"]["he"] == pytest.approx(float(probs[space_he[0]]), rel=1e-6)


def test_causal_lm_multi_token_word_is_the_product_of_its_next_token_probabilities():
    model, tokenizer = tiny_gpt2()
    table = rows([("the doctor said that [MASK] was tired .", "he", "zebra", "he", "zebra"),
                  ("maria went home and [MASK] read a book .", "zebra", "he", "zebra", "he")])
    scorer = ClassProbabilityScorer(resolve_objective("causal_lm", model, tokenizer), tokenizer, table,
                                    {"zebra": ["zebra"], "he": ["he"]})
    result = scorer(model)
    pieces = tokenizer(" zebra", add_special_tokens=False)["input_ids"]
    assert len(pieces) > 2
    for text, dataset in zip(table.masked, ("he", "zebra")):
        prefix = tokenizer(text[: text.index("[MASK]")].rstrip())["input_ids"]
        expected = 1.0
        for s, piece in enumerate(pieces):  # P(piece s | prefix, pieces before s), one forward each
            with torch.no_grad():
                logits = model(torch.tensor([prefix + pieces[:s]])).logits[0, -1].double()
            expected *= float(torch.softmax(logits, -1)[piece])
        assert result["probs_by_dataset"][dataset]["zebra"] == pytest.approx(expected, rel=1e-6)


def test_non_finite_model_gives_nan(bert):
    model, tokenizer = bert
    broken = tiny_bert()[0]
    with torch.no_grad():
        broken.cls.predictions.decoder.weight.fill_(float("nan"))
    table = rows([("the doctor said that [MASK] was tired .", "he", "she", "he", "she")])
    scorer = ClassProbabilityScorer(resolve_objective("masked_lm", model, tokenizer), tokenizer, table,
                                    {"she": ["she"], "he": ["he"]})
    assert math.isnan(scorer(broken)["probs_by_dataset"]["he"]["she"])

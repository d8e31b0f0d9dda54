"""Every Hugging Face LM family runs the library path: train, encode, rewrite, save, reload.

One tiny random model per family (:mod:`gradiend.demo.families`: 2 layers, 32 wide). Families differ
where GRADIEND touches them: parameter names and tying (XLM-RoBERTa registers its tied ``lm_head``
before the backbone), heads that do more than a projection (Gemma 2's logit soft-capping), position
offsets (OPT, RoBERTa), embedding scaling (Gemma). For each, the encoder's values (the fast JVP path)
equal a plain autograd computation, and the rewritten model saved with ``save_pretrained`` reloads
through the Auto class with the same logits.
"""
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from gradiend.demo.families import FAMILIES, build_family_model
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from tests.objectives_support import hand_encoded
from tests.training_support import she_he_table

TEXTS = ["Maria said that she was tired.", "Later that day the children went home because he was hungry."]


@pytest.fixture(scope="module")
def table(demo_corpus):
    return she_he_table(demo_corpus, max_per_class=40, left_context=True)  # a causal LM needs a prefix


@pytest.mark.parametrize("family", list(FAMILIES), ids=list(FAMILIES))
def test_family_trains_encodes_rewrites_and_reloads(family, table, demo_corpus, tmp_path):
    model_dir = build_family_model(family, tmp_path / "base", demo_corpus[:400])
    args = TrainingArguments(train_batch_size=4, max_steps=3, eval_steps=3, learning_rate=1e-3, max_seeds=1,
                             train_max_size=8, encoder_eval_max_size=4, eval_batch_size=8,
                             experiment_dir=str(tmp_path / "run"))
    trainer = TextPredictionTrainer(str(model_dir), data=table, args=args, target_classes=["she", "he"],
                                    progress=False)
    result = trainer.train()
    mwg = result.model_with_gradiend
    assert mwg.objective.name == ("masked_lm" if FAMILIES[family].masked else "causal_lm")
    assert len(result.training["losses"]) == 3 and all(math.isfinite(x) for x in result.training["losses"])

    rows = trainer.evaluate_encoder(split="test", max_size=2, return_df=True)["encoder_df"]
    rows = rows[rows["type"] == "training"]
    assert len(rows) == 4
    hand = [hand_encoded(mwg, m, f, a, mwg.source) for m, f, a in zip(rows["masked"], rows["factual"], rows["alternative"])]
    assert rows["encoded"].tolist() == pytest.approx(hand, rel=1e-4, abs=1e-5)

    rewritten = mwg.rewrite_base_model(learning_rate=1.0, feature_factor=mwg.feature_factor("she"))
    rewritten.save_pretrained(tmp_path / "rewritten")
    auto_class = AutoModelForMaskedLM if FAMILIES[family].masked else AutoModelForCausalLM
    reloaded = auto_class.from_pretrained(tmp_path / "rewritten", attn_implementation="eager").eval()
    inputs = mwg.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        base_logits, rewritten_logits, reloaded_logits = (m(**inputs).logits for m in (mwg.base_model, rewritten, reloaded))
    assert torch.equal(reloaded_logits, rewritten_logits)
    assert float((rewritten_logits - base_logits).abs().max()) > 1e-2  # the rewrite changed the model

"""Slow: train a she-vs-he GRADIEND on the pre-trained tiny BERT, then evaluate, select and rewrite.

The "strengthen she" model must raise P(she) on held-out sentences about men, the "weaken she"
model must lower P(she) on held-out sentences about women, and both must keep the LMS at
≥ 0.99 × the base model's.
"""
import pytest
from transformers import AutoModelForMaskedLM

from gradiend.data.demo_corpus import generate_demo_corpus
from gradiend.evaluation.evaluator import Evaluator
from gradiend.evaluation.probabilities import ClassProbabilityScorer, class_target_words
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from tests.evaluation_support import demo_tables

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(pretrained_masked_lm_dir):
    table, neutral = demo_tables(generate_demo_corpus(3000, seed=1), per_class=200, neutral=400)
    args = TrainingArguments(train_batch_size=8, max_steps=60, eval_steps=20, learning_rate=1e-3, max_seeds=1,
                             num_train_epochs=100, seed=0)
    trainer = TextPredictionTrainer(str(pretrained_masked_lm_dir), data=table, eval_neutral_data=neutral,
                                    target_classes=["she", "he"], args=args, progress=False)
    result = trainer.train()
    assert result.converged
    return trainer


def test_strengthen_and_weaken_she(trained, tmp_path):
    evaluator = Evaluator(trained)
    encoder = evaluator.evaluate_encoder()
    assert encoder["correlation"] > 0.8
    first = evaluator.evaluate_decoder(target_class="she")
    results = evaluator.evaluate_decoder(target_class="she", increase_target_probabilities=False)
    assert "she" in first and "she_weaken" not in first and "she" not in results  # only the requested direction
    strengthen, weaken = first["she"], results["she_weaken"]
    for entry in (strengthen, weaken):
        assert not entry["fallback"]
        assert entry["lms"] >= 0.99 * entry["base_lms"]
        assert entry["value"] > entry["base_value"]

    # check the saved models independently: held-out (test) rows, scored on the reloaded folders
    parts = evaluator.parts
    mwg = parts.model_with_gradiend
    test_rows = parts.data[parts.data["split"] == "test"]
    scorer = ClassProbabilityScorer(mwg.objective, mwg.tokenizer, test_rows,
                                    class_target_words(parts.data, ["she", "he"]))
    base = scorer(mwg.base_model)["probs_by_dataset"]
    up = evaluator.rewrite_base_model(target_class="she", output_dir=tmp_path / "she")
    down = evaluator.rewrite_base_model(target_class="she", increase_target_probabilities=False,
                                        output_dir=tmp_path / "she_weaken")
    raised = scorer(AutoModelForMaskedLM.from_pretrained(up))["probs_by_dataset"]
    lowered = scorer(AutoModelForMaskedLM.from_pretrained(down))["probs_by_dataset"]
    assert raised["he"]["she"] > base["he"]["she"] + 0.01  # P(she) on sentences about men goes up
    assert lowered["she"]["she"] < base["she"]["she"] - 0.01  # P(she) on sentences about women goes down
    assert "strengthen `she`" in (up / "README.md").read_text()

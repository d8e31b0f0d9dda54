"""Slow: a she-vs-he GRADIEND on the pre-trained tiny masked and causal LMs converges, repeatably.

The hyper-parameters here are the ones proposed for the default offline config.
"""
import json

import pytest

from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from tests.training_support import she_he_table

DEMO_TRAINING = dict(train_batch_size=16, max_steps=100, eval_steps=20, learning_rate=1e-3, max_seeds=1,
                     encoder_eval_max_size=40, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_she_he_gradiend_converges_deterministically(kind, request, demo_corpus, tmp_path):
    model_dir = request.getfixturevalue(f"pretrained_{kind}_lm_dir")
    table = she_he_table(demo_corpus, left_context=kind == "causal")
    outputs = []
    for run in ("a", "b"):
        args = TrainingArguments(**DEMO_TRAINING, experiment_dir=str(tmp_path / run))
        trainer = TextPredictionTrainer(str(model_dir), data=table, args=args, target_classes=["she", "he"])
        result = trainer.train()
        assert result.converged, result.convergence
        assert abs(result.best_correlation) >= 0.8
        best = next(h for h in result.training["history"] if h["step"] == result.training["best_step"])
        assert best["mean_by_class"]["she"] > 0.5 > -0.5 > best["mean_by_class"]["he"]
        outputs.append({name: (tmp_path / run / "model" / name).read_bytes()
                        for name in ("training.json", "model.safetensors")})
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]["training.json"])["convergence_info"]["converged"] is True

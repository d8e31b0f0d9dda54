"""The library's API and the workflow's stages are two front doors to one computation.

Given the same config, data and seeds, ``TextPredictionTrainer`` (several seeds, ``evaluate_decoder``,
``rewrite_base_model``) and the stages (``StageRun``, each with the workflow's config cut) train the
same seeds on the same rows, rank them by the same validation correlation, choose the same seed and
the same cells, and write byte-identical rewritten weights (CPU, tiny random BERT, a few steps).
"""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from gradiend.data.tables import read_training_data
from gradiend.training.arguments import PrePruneConfig, TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from gradiend.util.io import read_json
from tests.stages_support import EXCLUDED, StageRun, experiment_config

SEEDS = [3, 4]


@pytest.fixture(scope="module")
def both(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    with pytest.MonkeyPatch.context() as patch:  # CPU for both front doors, also on a machine with a GPU
        patch.setattr(torch.cuda, "is_available", lambda: False)
        yield _run_both(tmp_path_factory, demo_corpus, tiny_masked_lm_dir)


def _run_both(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    root = tmp_path_factory.mktemp("one_computation")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus[:300]) + "\n", encoding="utf-8")
    # row caps everywhere, so that every sampling seed matters
    experiment = experiment_config(
        tiny_masked_lm_dir, corpus, root / "results", seeds=SEEDS,
        training={"train_batch_size": 4, "eval_batch_size": 8, "max_steps": 4, "eval_steps": 2,
                  "learning_rate": 1.0e-3, "train_max_size": 12, "encoder_eval_max_size": 8,
                  "seed_selection_eval_max_size": 6},
        pre_prune={"n_samples": 4, "topk": 0.25, "source": "diff"},
        decoder={"learning_rates": [1.0, 0.1], "max_size_training_like": 8, "max_size_neutral": 8})
    workflow = StageRun(experiment, corpus, root / "results" / "exp")
    workflow.data()
    workflow.prune()
    for seed in SEEDS:
        workflow.train(seed, pruned=True)
        workflow.evaluate(seed)
    workflow.select_seed()
    workflow.decoder_grid()
    workflow.select_cell()
    workflow.rewrite("F")

    training = dict(experiment["training"])
    training["min_convergent_seeds"] = None  # the workflow trains every listed seed; the library may stop early
    args = TrainingArguments(
        **training, seed=SEEDS[0], max_seeds=len(SEEDS),
        experiment_dir=str(root / "library"), post_prune_config=experiment["post_prune"],
        pre_prune_config=PrePruneConfig(**experiment["pre_prune"]),
        decoder_eval_max_size_training_like=experiment["decoder"]["max_size_training_like"],
        decoder_eval_max_size_neutral=experiment["decoder"]["max_size_neutral"])
    trainer = TextPredictionTrainer(
        str(tiny_masked_lm_dir), data=read_training_data(workflow.path("data", "training.parquet")),
        eval_neutral_data=pd.read_parquet(workflow.path("data", "neutral.parquet")),
        args=args, target_classes=["F", "M"], eval_neutral_additional_excluded_words=EXCLUDED, progress=False)
    trainer.train()
    results = trainer.evaluate_decoder(lrs=experiment["decoder"]["learning_rates"], target_class="F")
    library_rewritten = trainer.rewrite_base_model(results, target_class="F", output_dir=root / "library" / "F")
    return workflow, trainer, results, Path(library_rewritten)


def test_same_seeds_scores_and_choice(both):
    workflow, trainer, _, _ = both
    choice = read_json(workflow.path("best", "seed.json"))
    report = trainer.seed_report
    assert report["seeds_tried"] == SEEDS
    assert report["best_seed"] == choice["seed"]
    assert report["best_seed_selection_strategy"] == choice["strategy"]
    library_scores = {run["seed"]: run["selection_score"] for run in report["runs"]}
    workflow_scores = {int(s): v["validation_correlation"] for s, v in choice["scores"].items()}
    assert library_scores == workflow_scores  # the same number, not only the same winner
    assert len(set(library_scores.values())) == len(SEEDS)  # the seeds really differ


def test_same_seed_checkpoints(both):
    workflow, trainer, _, _ = both
    for seed in SEEDS:
        ours = Path(trainer.args.experiment_dir) / "seeds" / f"seed_{seed}" / "model.safetensors"
        theirs = Path(workflow.path("seeds", str(seed), "model", "model.safetensors"))
        assert ours.read_bytes() == theirs.read_bytes(), f"seed {seed}"


def test_same_cell_and_byte_identical_rewrite(both):
    workflow, _, results, library_rewritten = both
    summary = read_json(workflow.path("decoder", "summary.json"))
    for key in ("learning_rate", "feature_factor", "value", "lms", "base_lms"):
        assert results["F"][key] == summary["F"][key], key
    ours = (library_rewritten / "model.safetensors").read_bytes()
    theirs = (Path(workflow.path("rewritten", "F")) / "model.safetensors").read_bytes()
    assert ours == theirs
    assert json.loads((library_rewritten / "config.json").read_text()) == \
        json.loads((Path(workflow.path("rewritten", "F")) / "config.json").read_text())

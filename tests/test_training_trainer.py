"""TextPredictionTrainer on a tiny random masked LM: files, determinism, pruning, seeds, clear errors."""
import json
import math

import numpy as np
import pytest
import torch

from gradiend.training.arguments import PostPruneConfig, PrePruneConfig, TrainingArguments
from gradiend.training.encoder_probe import ProbeResult
from gradiend.training.scheduler import BatchScheduler
from gradiend.training.trainer import TextPredictionTrainer
from gradiend.training.training_loop import NonFiniteGradientError, TrainingRun, make_optimizer
from tests.training_support import she_he_table


@pytest.fixture(scope="module")
def table(demo_corpus):
    return she_he_table(demo_corpus, max_per_class=80)


def _args(tmp_path=None, **kw):
    base = dict(train_batch_size=4, max_steps=6, eval_steps=3, learning_rate=1e-3, max_seeds=1,
                train_max_size=12, encoder_eval_max_size=6, eval_batch_size=8)
    if tmp_path is not None:
        base["experiment_dir"] = str(tmp_path)
    return TrainingArguments(**{**base, **kw})


def _trainer(model_dir, table, args):
    return TextPredictionTrainer(str(model_dir), data=table, args=args, target_classes=["she", "he"],
                                 progress=False)


# --- errors before training -------------------------------------------------------------------


def test_batch_larger_than_a_class_fails_before_loading_the_model(table, tmp_path):
    trainer = _trainer(tmp_path / "no-such-model", table, _args(train_batch_size=64))
    with pytest.raises(ValueError, match=r"she\u2192he .*fewer than train_batch_size=64"):
        trainer.train()


def test_missing_class_fails_before_loading_the_model(table, tmp_path):
    trainer = _trainer(tmp_path / "no-such-model", table[table.factual_class == "she"], _args())
    with pytest.raises(ValueError, match="'he'"):
        trainer.train()


def test_invalid_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="source"):
        TrainingArguments(source="weights")
    with pytest.raises(ValueError, match="topk"):
        TrainingArguments(pre_prune_config={"topk": None, "threshold": None})


# --- one run ----------------------------------------------------------------------------------


def test_train_seed_writes_checkpoint_and_history(tiny_masked_lm_dir, table, tmp_path):
    trainer = _trainer(tiny_masked_lm_dir, table, _args(tmp_path))
    result = trainer.train()
    model_dir = tmp_path / "model"
    assert result.model_dir == model_dir
    for name in ("config.json", "model.safetensors", "training.json", "timing.json", "gradiend_context.json"):
        assert (model_dir / name).is_file(), name
    stats = json.loads((model_dir / "training.json").read_text())
    assert [h["step"] for h in stats["history"]] == [0, 3, 6]
    assert len(stats["losses"]) == 6 and all(math.isfinite(x) for x in stats["losses"])
    evaluated = [h for h in stats["history"] if h["step"] > 0]
    best = max(evaluated, key=lambda h: abs(h["correlation"]))  # largest |r| after step 0; max keeps ties' first
    assert stats["best_step"] == best["step"]
    assert stats["convergence_info"]["best_step"] == stats["best_step"]
    assert set(stats["history"][1]["mean_by_class"]) == {"she", "he"}
    assert "output_dir" not in stats["training_args"] and stats["training_args"]["learning_rate"] == 1e-3
    loaded = trainer.load_trained(model_dir)
    assert loaded.gradiend.input_dim == result.model_with_gradiend.gradiend.input_dim
    assert loaded.feature_class_encoding_direction == {"she": 1, "he": -1}
    assert loaded.source == "alternative"
    fig = trainer.plot_training_convergence()
    assert (tmp_path / "training_convergence.png").is_file() and fig is not None
    metrics = trainer.evaluate_encoder(split="validation", max_size=4, return_df=True)
    rows = metrics["encoder_df"][metrics["encoder_df"]["type"] == "training"]
    assert len(rows) == 8  # max_size rows per transition, two transitions
    expected = np.corrcoef(rows["encoded"].to_numpy(float), rows["label"].to_numpy(float))[0, 1]
    assert metrics["correlation"] == pytest.approx(expected, abs=1e-9)


def test_runs_are_deterministic_for_a_seed(tiny_masked_lm_dir, table, tmp_path):
    files = []
    for run in ("a", "b"):
        trainer = _trainer(tiny_masked_lm_dir, table, _args(tmp_path / run, seed=5, max_steps=3))
        trainer.train()
        files.append({n: (tmp_path / run / "model" / n).read_bytes()
                      for n in ("training.json", "model.safetensors", "config.json")})
    assert files[0] == files[1]
    other = _trainer(tiny_masked_lm_dir, table, _args(tmp_path / "c", seed=6, max_steps=3))
    other.train()
    assert (tmp_path / "c" / "model" / "model.safetensors").read_bytes() != files[0]["model.safetensors"]


def test_max_steps_not_capped_by_epochs(tiny_masked_lm_dir, table):
    args = _args(max_steps=10, num_train_epochs=1, train_max_size=8, do_eval=False)
    result = _trainer(tiny_masked_lm_dir, table, args).train_seed(0)
    assert result.training["batches_per_epoch"] == 4
    assert result.training["total_steps"] == 10 and len(result.training["losses"]) == 10
    assert not result.converged and "do_eval" in result.convergence.reason


def test_pre_prune_builds_the_gradiend_at_the_pruned_size(tiny_masked_lm_dir, table, monkeypatch):
    from gradiend.model import gradiend_model

    sizes = []
    original = gradiend_model.GradiendModel.__init__

    def spy(self, input_dim, *a, **kw):
        sizes.append(int(input_dim))
        original(self, input_dim, *a, **kw)

    monkeypatch.setattr(gradiend_model.GradiendModel, "__init__", spy)
    args = _args(max_steps=2, eval_steps=2, pre_prune_config=PrePruneConfig(topk=500, n_samples=4),
                 post_prune_config=PostPruneConfig(topk=0.1))
    trainer = _trainer(tiny_masked_lm_dir, table, args)
    result = trainer.train_seed(0)
    assert sizes == [500]  # never the full size
    dims = result.training["input_dim"]
    assert dims["trained"] == 500 and dims["final"] == 50 and dims["unpruned"] > 100_000
    assert result.model_with_gradiend.gradiend.input_dim == 50


def test_pre_prune_mask_from_folder(tiny_masked_lm_dir, table, tmp_path):
    args = _args(max_steps=1, do_eval=False, pre_prune_config=PrePruneConfig(topk=0.001, n_samples=2))
    trainer = _trainer(tiny_masked_lm_dir, table, args)
    trainer.compute_pre_prune_mask().save(tmp_path / "prune")
    again = _trainer(tiny_masked_lm_dir, table, args)
    result = again.train_seed(0, pre_prune_importance=tmp_path / "prune")
    assert result.training["input_dim"]["trained"] == trainer._pre_prune.n_kept


def test_multi_seed_report_and_best_copy(tiny_masked_lm_dir, table, tmp_path):
    args = _args(tmp_path, max_seeds=2, min_convergent_seeds=None, seed=3, max_steps=3,
                 convergent_score_threshold=0.0, convergent_mean_by_class_threshold=0.0)
    trainer = _trainer(tiny_masked_lm_dir, table, args)
    result = trainer.train()
    report = json.loads((tmp_path / "seeds" / "seed_report.json").read_text())
    assert report["seeds_tried"] == [3, 4]
    assert report["best_seed"] == result.seed
    assert (tmp_path / "seeds" / "seed_3" / "training.json").is_file()
    best = (tmp_path / "seeds" / f"seed_{result.seed}" / "model.safetensors").read_bytes()
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == best
    assert trainer.model_with_gradiend is not None


def test_max_seeds_trains_every_seed_and_keeps_the_best(tiny_masked_lm_dir, table, tmp_path):
    """Documented: ``max_seeds=3  # Train 3 seeds and pick best``; early stopping only on request."""
    everything_converges = dict(convergent_score_threshold=0.0, convergent_mean_by_class_threshold=0.0)
    args = _args(tmp_path / "all", max_seeds=3, seed=5, max_steps=3, **everything_converges)
    assert args.min_convergent_seeds is None
    result = _trainer(tiny_masked_lm_dir, table, args).train()
    report = json.loads((tmp_path / "all" / "seeds" / "seed_report.json").read_text())
    assert report["seeds_tried"] == [5, 6, 7] and [r["seed"] for r in report["runs"]] == [5, 6, 7]
    assert report["early_stop_reason"] is None
    scores = {r["seed"]: abs(r["selection_score"]) for r in report["runs"]}
    assert result.seed == report["best_seed"] == max(scores, key=scores.get)

    args = _args(tmp_path / "early", max_seeds=3, seed=5, max_steps=3, min_convergent_seeds=1,
                 **everything_converges)
    _trainer(tiny_masked_lm_dir, table, args).train()
    report = json.loads((tmp_path / "early" / "seeds" / "seed_report.json").read_text())
    assert report["seeds_tried"] == [5] and "min_convergent_seeds=1" in report["early_stop_reason"]


def test_fail_on_non_convergence(tiny_masked_lm_dir, table):
    args = _args(max_steps=1, eval_steps=1, convergent_score_threshold=1.0, fail_on_non_convergence=True)
    with pytest.raises(RuntimeError, match="fail_on_non_convergence"):
        _trainer(tiny_masked_lm_dir, table, args).train()


# --- the loop's guards ------------------------------------------------------------------------


@pytest.fixture
def run_parts(tiny_masked_lm_dir, table):
    args = _args(max_steps=2)
    trainer = _trainer(tiny_masked_lm_dir, table, args)
    rows = trainer.train_rows()
    scheduler = BatchScheduler(rows.frame.feature_class_id.tolist(), rows.frame.label.tolist(), 4, 0)
    mwg = trainer.create_model_with_gradiend(0)
    return mwg, scheduler, rows, args, trainer


class _FixedProbe:
    def __init__(self, correlation):
        self.correlation = correlation

    def evaluate(self, mwg):
        return ProbeResult(self.correlation, {"she": -0.8, "he": 0.7}, {"she": 3, "he": 3}, np.zeros(6))


def test_normalisation_inverts_below_minus_0_6(run_parts):
    mwg, scheduler, rows, args, trainer = run_parts
    run = TrainingRun(mwg, scheduler, rows, _FixedProbe(-0.9), args, trainer.target_classes, progress=False)
    run.prepare_batches()
    optimizer = make_optimizer(mwg.gradiend.parameters(), args)
    run.train_step(1, optimizer)
    before = mwg.gradiend.encoder_weight.detach().clone()
    momentum = optimizer.state[mwg.gradiend.encoder.weight]["exp_avg"].clone()
    record = run.evaluate(1, optimizer)
    assert record.normalised and record.correlation == pytest.approx(0.9)
    assert record.mean_by_class == {"she": 0.8, "he": -0.7}
    torch.testing.assert_close(mwg.gradiend.encoder_weight.detach(), -before)
    torch.testing.assert_close(optimizer.state[mwg.gradiend.encoder.weight]["exp_avg"], -momentum)
    assert run.best.step == 1 and run.best.correlation == pytest.approx(0.9)
    kept = TrainingRun(mwg, scheduler, rows, _FixedProbe(-0.5), args, trainer.target_classes, progress=False)
    assert not kept.evaluate(2, optimizer).normalised


def test_non_finite_gradient_names_step_and_parameter(run_parts, monkeypatch):
    mwg, scheduler, rows, args, trainer = run_parts
    run = TrainingRun(mwg, scheduler, rows, None, args, trainer.target_classes, progress=False)
    run.prepare_batches()
    name, start, _ = mwg.gradiend.segments()[3]

    def broken(which):
        def gradients(batch, buffers=None):
            vectors = {"source": torch.zeros(mwg.gradiend.input_dim), "target": torch.zeros(mwg.gradiend.input_dim)}
            vectors[which][start] = float("nan")
            return vectors["source"], vectors["target"]
        return gradients

    for which in ("source", "target"):
        monkeypatch.setattr(mwg, "source_and_target_gradients", broken(which))
        with pytest.raises(NonFiniteGradientError, match=rf"step 2: the {which} .*{name}"):
            run.train_step(2, make_optimizer(mwg.gradiend.parameters(), args))


def test_a_target_word_the_tokenizer_maps_to_unknown_is_refused_before_training(tiny_masked_lm_dir, table):
    """Library path: nothing to learn from [UNK], so the trainer names the word instead of training."""
    odd = table.copy()
    odd.loc[odd["factual_class"] == "she", "factual"] = "zyxwvq"
    trainer = _trainer(tiny_masked_lm_dir, odd, _args())
    with pytest.raises(ValueError, match=r"'zyxwvq' \(class 'she'\).*unknown token '\[UNK\]'"):
        trainer.train()


def test_a_trainer_without_data_still_loads_its_base_model(tiny_masked_lm_dir):
    """The target-word check belongs to training, not to loading the base model."""
    model, tokenizer, objective, reference = TextPredictionTrainer(str(tiny_masked_lm_dir), progress=False).base()
    assert objective.name == "masked_lm" and reference == str(tiny_masked_lm_dir)

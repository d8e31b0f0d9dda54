"""The memory plan: predicted peaks against peaks measured in a subprocess, and refusals before any
weight is loaded (library and workflow), with the numbers and the three ways out."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gradiend import workflow_config as wfc
from gradiend.model.backbone import UnmatchedPatternError, mapped_parameters
from gradiend.model.loading import load_meta_model
from gradiend.model.memory_plan import MemoryPlanError, plan_memory
from gradiend.schema_validation import ConfigError
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from tests.training_support import she_he_table

REPO = Path(__file__).resolve().parents[1]

_MEASURE = """
import json, sys
from gradiend.data.demo_corpus import generate_demo_corpus
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from tests.training_support import she_he_table

pre = json.loads(sys.argv[2])
args = TrainingArguments(train_batch_size=8, eval_batch_size=8, max_steps=2, do_eval=False, max_seeds=1,
                         learning_rate=1e-4, pre_prune_config=pre)
trainer = TextPredictionTrainer(sys.argv[1], data=she_he_table(generate_demo_corpus(600, seed=0)), args=args,
                                target_classes=["she", "he"], progress=False)
trainer.train_seed(0)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak": peak, "plan": trainer.memory_plan.peak}))
"""


@pytest.fixture(scope="module")
def sized_models(tmp_path_factory, demo_corpus):
    """Two shapes whose tensors outweigh the interpreter: unpruned training of a 4 × 512 BERT and
    pre-pruning of a 3 × 768 BERT (both with a 30,522-word vocabulary)."""
    from gradiend.demo.models import build_tiny_masked_lm

    folder = tmp_path_factory.mktemp("sized")
    return {
        "train": build_tiny_masked_lm(folder / "bert-512", demo_corpus, hidden_size=512, num_layers=4, num_heads=8,
                                      intermediate_size=2048, vocab_size=30522),
        "pre_prune": build_tiny_masked_lm(folder / "bert-768", demo_corpus, hidden_size=768, num_layers=3,
                                          num_heads=12, intermediate_size=3072, vocab_size=30522),
    }


@pytest.mark.parametrize("stage, pre_prune", [("train", None), ("pre_prune", {"topk": 0.01, "n_samples": 8})])
def test_plan_predicts_the_measured_peak(sized_models, stage, pre_prune):
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(sized_models[stage]), json.dumps(pre_prune)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["peak"] > 600 * 2**20  # tensors, not the interpreter, make the peak
    print(stage, measured["plan"] / measured["peak"], measured["peak"] / 2**30)
    assert abs(measured["plan"] / measured["peak"] - 1) <= 0.25, measured


def test_plan_counts_the_model_from_its_config(tiny_masked_lm_dir):
    from transformers import AutoModelForMaskedLM

    loaded = AutoModelForMaskedLM.from_pretrained(tiny_masked_lm_dir)
    meta = load_meta_model(tiny_masked_lm_dir)[0]
    mapped = mapped_parameters(loaded)
    n = sum(p.numel() for p in mapped.values())
    plan = plan_memory(meta, baseline=0, pre_prune={"topk": 100, "n_samples": 8, "batch_size": 8})
    weights = sum(p.numel() for p in loaded.parameters()) * 4 + sum(b.numel() * b.element_size()
                                                                   for b in loaded.buffers())
    assert (plan.n_parameters, plan.n_mapped, plan.n_trained) == (sum(p.numel() for p in loaded.parameters()), n, 100)
    assert plan.stage("train").parts["base model"] == weights
    assert plan.stage("train").parts["GRADIEND + AdamW"] == 3 * 3 * 100 * 4  # weights + two AdamW states
    assert plan.stage("pre_prune").parts["importance"] == n * 4
    half = plan_memory(meta, dtype="bfloat16", baseline=0, pre_prune={"topk": 100})
    assert half.stage("pre_prune").parts["importance"] == n * 2  # one chunk: summed in bfloat16


def test_plan_holds_one_gradient_and_one_tangent_of_the_mapped_entries(tiny_masked_lm_dir):
    """Narrowing ``params`` (the largest mapped tensor kept) shrinks the step's gradient and the scoring
    tangent by exactly the entries left out, in the model's dtype."""
    meta = load_meta_model(tiny_masked_lm_dir)[0]
    layer = "bert.encoder.layer.1"
    narrow = ["bert.embeddings.*", "bert.encoder.layer.0.*", f"{layer}.intermediate.*", f"{layer}.output.*"]
    left_out = sum(p.numel() for name, p in mapped_parameters(meta).items() if name.startswith(f"{layer}.attention."))
    assert left_out > 0
    for dtype, size in (("float32", 4), ("bfloat16", 2)):
        whole, part = plan_memory(meta, dtype=dtype, baseline=0), plan_memory(meta, dtype=dtype, baseline=0, params=narrow)
        assert whole.n_mapped - part.n_mapped == left_out
        for stage, key in (("train", "gradient or tangent"), ("score", "tangent")):
            assert whole.stage(stage).parts[key] - part.stage(stage).parts[key] == left_out * size


def _no_weights(monkeypatch):
    import gradiend.model.loading as loading

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(loading, "load_base_model", refuse)


def test_trainer_refuses_a_run_that_does_not_fit_before_loading(tiny_masked_lm_dir, demo_corpus, monkeypatch, tmp_path):
    _no_weights(monkeypatch)
    args = TrainingArguments(max_steps=2, max_seeds=1, experiment_dir=str(tmp_path / "experiment"))
    trainer = TextPredictionTrainer(str(tiny_masked_lm_dir), data=she_he_table(demo_corpus, 60), args=args,
                                    target_classes=["she", "he"], progress=False, max_memory=0.01)
    with pytest.raises(MemoryPlanError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "stopped before loading any weights" in message and "max_memory = 0.01 GiB" in message
    assert "in stage 'train'" in message
    for way in ("pre-prune (`pre_prune.topk`", "narrow `params`", "bfloat16"):
        assert way in message
    assert not (tmp_path / "experiment").exists()


def test_params_matching_nothing_fails_before_loading(tiny_masked_lm_dir, demo_corpus, monkeypatch):
    _no_weights(monkeypatch)
    args = TrainingArguments(max_steps=2, max_seeds=1, params=["bert.encoder.layer.0.*", "no.such.*"])
    trainer = TextPredictionTrainer(str(tiny_masked_lm_dir), data=she_he_table(demo_corpus, 60), args=args,
                                    target_classes=["she", "he"], progress=False)
    with pytest.raises(UnmatchedPatternError, match="'no.such.\\*' matches no backbone parameter"):
        trainer.train()


def _config(model_dir, results, **top):
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    raw["experiments"] = {"local_bert": raw["experiments"]["gender_tiny_bert"]}
    raw["experiments"]["local_bert"]["base_model"] = str(model_dir)
    return {**raw, "results_dir": str(results), **top}


def test_workflow_config_check_refuses_a_tiny_max_memory(tiny_masked_lm_dir, tmp_path, capsys):
    with pytest.raises(ConfigError) as caught:
        wfc.load_and_validate(_config(tiny_masked_lm_dir, tmp_path / "results", max_memory=0.001))
    (problem,) = caught.value.problems
    assert problem.startswith("config key `max_memory` / experiment 'local_bert'")
    assert "stopped before loading any weights" in problem and "max_memory = 0.001 GiB" in problem
    for way in ("pre-prune", "narrow `params`", "bfloat16"):
        assert way in problem
    assert "memory plan for experiment 'local_bert'" in capsys.readouterr().err  # printed at start-up
    assert not (tmp_path / "results").exists()
    resolved = wfc.load_and_validate(_config(tiny_masked_lm_dir, tmp_path / "results", max_memory=64))
    assert resolved["max_memory"] == 64


def test_workflow_config_check_names_params_matching_nothing(tiny_masked_lm_dir, tmp_path):
    config = _config(tiny_masked_lm_dir, tmp_path / "results")
    config["experiments"]["local_bert"].setdefault("training", {})["params"] = ["nothing.*"]
    with pytest.raises(ConfigError) as caught:
        wfc.load_and_validate(config)
    (problem,) = caught.value.problems
    assert problem.startswith("config key `experiments.local_bert.training.params`: parameter pattern 'nothing.*'")


def test_snakemake_dry_run_prints_the_plan_and_stops(tiny_masked_lm_dir, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(tiny_masked_lm_dir, tmp_path / "results", max_memory=0.001)))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "memory plan for experiment 'local_bert'" in output and "stopped before loading any weights" in output
    assert not (tmp_path / "results").exists()


def test_meta_model_and_real_load_take_the_same_dtype(tiny_masked_lm_dir, tmp_path):
    """Without a torch_dtype both load the checkpoint's own dtype (the plan is made for what loads)."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from gradiend.model.loading import load_base_model

    folder = tmp_path / "bf16"
    AutoModelForMaskedLM.from_pretrained(tiny_masked_lm_dir).to(torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_masked_lm_dir).save_pretrained(folder)
    for torch_dtype, expected in ((None, torch.bfloat16), ("float32", torch.float32)):
        meta = load_meta_model(folder, torch_dtype=torch_dtype)[0]
        real = load_base_model(folder, torch_dtype=torch_dtype)[0]
        assert {p.dtype for p in meta.parameters()} == {p.dtype for p in real.parameters()} == {expected}

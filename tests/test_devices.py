"""Where the base model and the GRADIEND run (gradiend.util.devices).

A base model placed by a device map, and one split into blocks by accelerate's hooks, train, encode and
rewrite to exactly the numbers of the same model on one device (on this CPU machine every block sits on
the CPU; benchmarks/gpu_check.py splits over two real devices). A device, a map or a dtype this machine
cannot run is refused before any weights load, by the library and by the workflow's start-up.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from gradiend import workflow_config as wfc
from gradiend.model.loading import _accelerate_map, _check_not_offloaded, load_base_model
from gradiend.model.with_gradiend import ModelWithGradiend
from gradiend.schema_validation import ConfigError
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from gradiend.util import devices
from tests.stages_support import StageRun, experiment_config
from tests.training_support import she_he_table

REPO = Path(__file__).resolve().parents[1]
ARGS = dict(train_batch_size=4, max_steps=2, eval_steps=2, learning_rate=1e-2, max_seeds=1, train_max_size=12,
            encoder_eval_max_size=6, eval_batch_size=8)


@pytest.fixture(scope="module")
def table(demo_corpus):
    return she_he_table(demo_corpus, max_per_class=80, left_context=True)


def blocks(module: nn.Module, prefix: str = "") -> list[str]:
    """Module names down to single layers: a model's embeddings, each transformer layer, its head."""
    names = []
    for name, child in module.named_children():
        if isinstance(child, nn.ModuleList):
            names += [f"{prefix}{name}.{i}" for i in range(len(child))]
        elif any(isinstance(m, nn.ModuleList) for m in child.modules()):
            names += blocks(child, f"{prefix}{name}.")
        else:
            names.append(f"{prefix}{name}")
    return names


def _hooked(folder):
    """The model with accelerate's hooks on every block (each moves its inputs to its block's device)."""
    from accelerate import dispatch_model

    model, tokenizer, objective = load_base_model(str(folder))
    dispatch_model(model, {name: "cpu" for name in blocks(model)}, main_device="cpu", force_hooks=True)
    assert sum(hasattr(m, "_hf_hook") for m in model.modules()) > len(blocks(model))  # hooks are really on
    return ModelWithGradiend.from_pretrained(model, tokenizer=tokenizer, objective=objective)


def _numbers(model, table, **args):
    """The trained GRADIEND's tensors, the batched encoding of test rows, a rewrite's weights and logits."""
    trainer = TextPredictionTrainer(model, data=table, args=TrainingArguments(**ARGS, **args),
                                    target_classes=["she", "he"], progress=False)
    trained = trainer.train().model_with_gradiend
    rows = table[table["split"] == "test"].head(12)
    batch = trained.prepare(rows["masked"].tolist(), rows["factual"].tolist(), rows["alternative"].tolist())
    rewritten = trained.rewrite_base_model(1.0, 1.0)
    with torch.no_grad():
        logits = trained.objective.scored_logits(rewritten, batch)
        base_logits = trained.objective.scored_logits(trained.base_model, batch)
    mapped = set(trained.gradiend.param_map)
    return {"gradiend": trained.gradiend.state_dict(), "encoded": trained.encode_batch(batch),
            "rewritten": {n: p for n, p in rewritten.named_parameters() if n in mapped}, "logits": logits,
            "base_logits": base_logits}


def _assert_equal(got: dict, want: dict) -> None:
    for key, value in want.items():
        if isinstance(value, dict):
            assert value.keys() == got[key].keys(), key
            for name in value:
                assert torch.equal(got[key][name], value[name]), (key, name)
        else:
            assert torch.equal(got[key], value), key


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_a_device_map_and_hooks_on_every_block_give_the_numbers_of_one_device(
        kind, tiny_masked_lm_dir, tiny_causal_lm_dir, table):
    folder = tiny_masked_lm_dir if kind == "masked" else tiny_causal_lm_dir
    plain = _numbers(str(folder), table)
    assert (plain["logits"] - plain["base_logits"]).abs().max() > 1e-3  # the rewrite changes the model
    reference, _, _ = load_base_model(str(folder))
    mapped = _numbers(str(folder), table, device_map={name: "cpu" for name in blocks(reference)})
    _assert_equal(mapped, plain)
    _assert_equal(_numbers(_hooked(folder), table), plain)


def test_each_gradient_is_read_with_indices_on_its_own_parameters_device(tiny_masked_lm_dir):
    """A split model's parameters lie on several devices: the kept entries of each are selected with an
    index tensor on that parameter's device (a "meta" parameter stands in for a second device here)."""
    model, tokenizer, objective = load_base_model(str(tiny_masked_lm_dir))
    mwg = ModelWithGradiend.from_pretrained(model, tokenizer=tokenizer, objective=objective)
    mwg.prune_gradiend(topk=0.5)
    params = mwg.mapped_parameters()
    elsewhere = list(params)[-1]
    moved = {**params, elsewhere: torch.empty(params[elsewhere].shape, device="meta")}
    devices_of = {name: None if index is None else index.device.type
                  for name, _, _, index in mwg._flat_segments(moved)}
    assert devices_of[elsewhere] == "meta"
    assert {d for n, d in devices_of.items() if n != elsewhere and d is not None} == {"cpu"}
    assert {index.device.type for *_, index in mwg._flat_segments(params) if index is not None} == {"cpu"}  # rebuilt


def test_the_workflow_stages_load_with_the_configured_device_map(tiny_masked_lm_dir, demo_corpus, tmp_path,
                                                               monkeypatch):
    """training.device_map reaches every stage that loads the base model (through its config cut), and
    the pre-pruning mask, the seed's checkpoint and its encoder metrics are those without a map."""
    import gradiend.model.loading as loading

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus) + "\n")
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device_map"))
        return load_base_model(*args, **kwargs)

    monkeypatch.setattr(loading, "load_base_model", spy)
    reference, _, _ = load_base_model(str(tiny_masked_lm_dir))
    device_map = {name: "cpu" for name in blocks(reference)}
    files = {}
    for name, training in (("plain", {}), ("mapped", {"device_map": device_map, "gradiend_device": "cpu"})):
        training = {"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 4, "eval_steps": 2,
                    "learning_rate": 1.0e-3, **training}
        experiment = experiment_config(tiny_masked_lm_dir, corpus, tmp_path / name, training=training, seeds=[0],
                                       pre_prune={"n_samples": 8, "topk": 0.5})
        run = StageRun(experiment, corpus, tmp_path / name)
        run.data()
        run.prune()
        run.train(0, pruned=True)
        run.evaluate(0)
        files[name] = [Path(run.path(*parts)).read_bytes() for parts in (
            ("prune", "mask.safetensors"), ("seeds", "0", "model", "model.safetensors"),
            ("seeds", "0", "encoder", "metrics.json"))]
    assert seen == [None] * 3 + [device_map] * 3  # pre_prune, train_seed, evaluate_encoders, each run
    assert files["mapped"] == files["plain"]


# --- bad input: refused by name, before any weights load ----------------------------------------------

@pytest.mark.parametrize("settings, field, message", [
    ({"device_map": "gpu"}, "device_map", "is not a device map"),
    ({"device_map": {"bert.encoder": "disk", "bert.embeddings": 0}}, "device_map", "offloads modules to 'disk'"),
    ({"device_map": {"bert.encoder": "cpu", "bert.embeddings": "cuda:0"}}, "device_map", "'cpu' beside a GPU"),
    ({"device_map": {}}, "device_map", "is not a device map"),
    ({"device": "cpu", "device_map": "auto"}, "device", "are both set"),
    ({"gradiend_device": "gpu0"}, "gradiend_device", "is not a device"),
])
def test_a_malformed_placement_is_refused_naming_the_field(settings, field, message):
    with pytest.raises(ValueError, match=rf"TrainingArguments\.{field}: .*{message}"):
        TrainingArguments(**settings)


def test_a_malformed_placement_is_a_config_error_naming_the_key(tiny_masked_lm_dir):
    config = {"experiments": {"exp": {"base_model": str(tiny_masked_lm_dir),
                                      "data": {"feature_targets": [{"id": "F", "targets": ["she"]},
                                                                   {"id": "M", "targets": ["he"]}]},
                                      "training": {"device_map": {"bert": "disk"}, "gradiend_device": "gpu"}}}}
    with pytest.raises(ConfigError) as error:
        wfc.load_and_validate(config)
    assert error.value.problems == [
        "config key `experiments.exp.training.gradiend_device`: 'gpu' is not a device: expected " + devices.DEVICE_FORM,
        "config key `experiments.exp.training.device_map`: {'bert': 'disk'} offloads modules to 'disk'/'meta': "
        + devices._OFFLOAD]


@pytest.fixture
def two_old_gpus(monkeypatch):
    """This machine as if it had two GPUs of compute capability 7.5 (a T4) that run every probe matmul."""
    monkeypatch.setattr(devices, "_cuda_count", lambda: 2)
    monkeypatch.setattr(devices, "_cuda_capability", lambda index: (7, 5))
    monkeypatch.setattr(devices, "_matmul_runs", lambda dtype, device: True)


def test_an_absent_gpu_is_refused_before_the_model_is_read(two_old_gpus, tmp_path):
    missing = str(tmp_path / "no-such-model")  # read first, it would fail as "does not exist"
    with pytest.raises(ValueError, match=r"^TrainingArguments\.device_map: 'cuda:3' names cuda:3: this machine has "
                                         r"2 CUDA device\(s\), cuda:0 to cuda:1$"):
        TextPredictionTrainer(missing, args=TrainingArguments(device_map="cuda:3"))
    with pytest.raises(ValueError, match=r"^TrainingArguments\.gradiend_device: 'cuda:2': this machine has 2 CUDA"):
        TextPredictionTrainer(missing, args=TrainingArguments(gradiend_device=2))
    with pytest.raises(ValueError, match=r"^load_base_model\.device_map: \{'a': 0, 'b': 5\} names cuda:5"):
        load_base_model(missing, device_map={"a": 0, "b": 5})
    with pytest.raises(ValueError, match=r"^from_pretrained\.gradiend_device: 'cuda:4'"):
        ModelWithGradiend.from_pretrained(missing, gradiend_device="cuda:4")
    assert devices.device_problems(device_map={"a": 0, "b": "cuda:1"}, gradiend_device="cuda:1") == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_this_cpu_machine_is_refused(tmp_path):
    for settings, field in (({"device_map": "cuda"}, "device_map"), ({"device": "cuda"}, "device"),
                            ({"gradiend_device": "cuda:1"}, "gradiend_device")):
        with pytest.raises(ValueError, match=rf"^TrainingArguments\.{field}: .*this machine has no CUDA device"):
            TextPredictionTrainer(str(tmp_path / "no-such-model"), args=TrainingArguments(**settings))


def test_bfloat16_needs_compute_capability_8(two_old_gpus):
    why = ("has no native bfloat16, which needs 8.0 (Ampere or newer): use float16 or float32")
    assert devices.device_problems(device_map="auto", torch_dtype="bfloat16") == [
        ("torch_dtype", f"'bfloat16' on cuda:{i}: cuda:{i} (compute capability 7.5) {why}") for i in (0, 1)]
    assert devices.device_problems(device_map="auto", torch_dtype="float16") == []
    assert devices.device_problems(device="cpu", torch_dtype="bfloat16") == []  # the CPU is no GPU


def test_a_dtype_the_device_cannot_compute_in_is_refused(monkeypatch, tmp_path):
    """torch 2.13 runs float16 and bfloat16 matmuls on this CPU (the first assertion), so a CPU that
    refuses them is stubbed: the check asks the probe and names the dtype and the device."""
    assert devices._matmul_runs(torch.bfloat16, "cpu") and devices._matmul_runs(torch.float16, "cpu")
    monkeypatch.setattr(devices, "_matmul_runs", lambda dtype, device: dtype != torch.float16)
    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    with pytest.raises(ValueError, match=r"^TrainingArguments\.torch_dtype: 'float16' on cpu: torch .* cannot run "
                                         r"float16 matmuls on cpu: use float32$"):
        TextPredictionTrainer(str(tmp_path / "no-such-model"), args=TrainingArguments(torch_dtype="float16"))
    assert devices.device_problems(torch_dtype="bfloat16") == []


def test_a_device_map_without_accelerate_is_refused(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    with pytest.raises(ValueError, match=r"'auto' needs the package accelerate.*pip install accelerate"):
        load_base_model(str(tmp_path / "no-such-model"), device_map="auto")


def test_a_map_that_offloaded_weights_after_all_is_refused():
    """``device_map="auto"`` offloads what the GPUs cannot hold; that is found right after loading."""
    model = nn.Linear(2, 2)
    model.hf_device_map = {"a": 0, "b": "cpu"}
    with pytest.raises(ValueError, match=r"device_map 'auto' offloaded part of base model 'm' to \['cpu'\]"):
        _check_not_offloaded(model, "m", "auto")
    model.hf_device_map = {"": "cpu"}  # the whole model on the CPU is no offloading
    _check_not_offloaded(model, "m", "auto")
    assert _accelerate_map({"a": "cuda:1", "b": "cuda", "c": "cpu", "d": 2}) == {"a": 1, "b": 0, "c": "cpu", "d": 2}


def _dry_run(tmp_path, *args):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    next(iter(config["experiments"].values())).setdefault("training", {})["device_map"] = "cuda:3"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", str(path),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.skipif(torch.cuda.device_count() > 3, reason="needs a machine without cuda:3")
def test_the_workflow_refuses_an_absent_device_before_any_job_and_a_cluster_checks_on_its_nodes(tmp_path):
    code, output = _dry_run(tmp_path)
    key = "config key `experiments.gender_tiny_bert.training.device_map`"
    assert code != 0 and f"{key}: 'cuda:3' names cuda:3" in output
    assert not (tmp_path / "results").exists()
    # submitting to SLURM from a login node without GPUs: each job checks the node it runs on
    code, output = _dry_run(tmp_path, "--workflow-profile", "workflow/profiles/slurm")
    assert code == 0, output


@pytest.mark.skipif(torch.cuda.device_count() > 3, reason="needs a machine without cuda:3")
def test_the_workflow_probes_other_dtypes_in_a_child_process(monkeypatch):
    """Start-up probes a bfloat16 run's devices in a child (no GPU context stays in Snakemake's process);
    a float32 run is checked here (no probe). The parent's own check is disabled to show which ran."""
    from gradiend import workflow_checks

    def experiments(dtype):
        return {"experiments": {"e": {"training": {"device_map": "cuda:3", "gradiend_device": None,
                                                   "torch_dtype": dtype}}}}

    expected = [f"config key `experiments.e.training.device_map`: {why}"
                for _, why in devices.device_problems(device_map="cuda:3", torch_dtype="bfloat16")]
    assert len(expected) == 1 and "'cuda:3' names cuda:3" in expected[0]
    monkeypatch.setattr(devices, "device_problems", lambda **settings: [("device_map", "asked in this process")])
    assert workflow_checks.device_problems(experiments("bfloat16")) == expected
    assert workflow_checks.device_problems(experiments("float32")) == [
        "config key `experiments.e.training.device_map`: asked in this process"]


def test_the_gpu_is_the_default_whenever_one_is_visible(monkeypatch):
    from gradiend.stages.models import placement

    no_map = {"training": {"device_map": None}}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.default_device() == "cpu" and placement(no_map) == {"device": "cpu", "device_map": None}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.default_device() == "cuda" and placement(no_map) == {"device": "cuda", "device_map": None}
    assert placement({"training": {"device_map": "auto"}}) == {"device": None, "device_map": "auto"}

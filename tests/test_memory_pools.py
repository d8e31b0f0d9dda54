"""The memory plan by pool: the host and each GPU hold their own parts and are checked against their own
limits (``max_memory``, the GPU's free memory, the host's cgroup), so a GPU run is not measured against
host RAM, and a cluster's start-up does not measure the login node."""
from pathlib import Path

import pytest

from gradiend import workflow_config as wfc
from gradiend.model import memory_plan
from gradiend.model.backbone import mapped_parameters
from gradiend.model.loading import load_meta_model
from gradiend.model.memory_plan import MemoryPlanError, ensure_fits, memory_pool, plan_memory
from gradiend.schema_validation import ConfigError
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from gradiend.util import memory
from tests.test_memory_plan import _config, _no_weights
from tests.training_support import she_he_table

MIB = 1 << 20
SPLIT = {"bert.embeddings": "cuda:0", "bert.encoder.layer.0": "cuda:0", "bert.encoder.layer.1": 1, "cls": "cuda:1"}


@pytest.fixture()
def meta(tiny_masked_lm_dir):
    return load_meta_model(tiny_masked_lm_dir)[0]


def _fake_machine(monkeypatch, *, host: int, gpus: dict[str, int]):
    """A host with ``host`` bytes available and GPUs with the given free bytes."""
    monkeypatch.setattr(memory_plan, "host_available_bytes", lambda: host)
    monkeypatch.setattr(memory_plan, "accelerator_free_bytes", lambda pool, held_here=False: gpus.get(pool))


def test_pools_of_devices():
    assert [memory_pool(d) for d in ("cpu", "mps", "cuda", "cuda:2", "xpu")] == ["cpu", "cpu", "cuda:0", "cuda:2",
                                                                               "xpu:0"]


def test_a_device_map_splits_the_plan_by_its_modules_sizes(meta):
    plan = plan_memory(meta, baseline=7 * MIB, device_map=SPLIT)
    second = meta.bert.encoder.layer[1]
    head_only = [p for p in meta.cls.parameters() if p is not meta.bert.embeddings.word_embeddings.weight]
    later = {id(p) for p in [*second.parameters(), *head_only]}
    mapped = list(mapped_parameters(meta).values())
    share = sum(p.numel() for p in meta.parameters() if id(p) in later) / sum(p.numel() for p in meta.parameters())
    mapped_share = sum(p.numel() for p in mapped if id(p) in later) / sum(p.numel() for p in mapped)
    assert 0 < mapped_share < share < 1  # the head is on cuda:1 but is no GRADIEND input
    score = plan.stage("score").parts
    split = plan.placement.split(plan.stage("score"))
    assert split["cpu"] == 7 * MIB  # the process alone: no weights on the host
    beside_entries = score["tangent"] + score["activations"]
    assert split["cuda:1"] == round(share * score["base model"] + mapped_share * beside_entries)
    assert split["cuda:0"] == round((1 - share) * score["base model"] + (1 - mapped_share) * beside_entries
                                    + score["GRADIEND"])
    assert plan.peak == max(plan.peaks.values()) and set(plan.peaks) == {"cpu", "cuda:0", "cuda:1"}
    on_first = plan_memory(meta, baseline=7 * MIB, device_map=SPLIT, gradiend_device="cuda:1")
    assert on_first.placement.gradiend == "cuda:1"
    assert "cuda:1" in on_first.lines()[1] and "cpu 0.01 GiB" in on_first.lines()[1]


def test_a_gpu_run_is_checked_against_the_gpu_not_the_host(meta, monkeypatch):
    one_device = plan_memory(meta, baseline=8 * MIB)
    needed, weights = one_device.peak - 8 * MIB, one_device.stage("train").parts["base model"]
    assert [stage.name for stage in one_device.stages] == ["train", "score"]  # on the host: no load stage
    _fake_machine(monkeypatch, host=8 * MIB + weights + MIB, gpus={"cuda:0": needed + MIB})
    with pytest.raises(MemoryPlanError, match=r"on cpu in stage"):  # on the host the run does not fit
        ensure_fits(meta, running_here=False, baseline=8 * MIB, device="cpu")
    plan = ensure_fits(meta, running_here=False, baseline=8 * MIB, device="cuda:0")  # on the GPU it does
    # the host holds the process and, while from_pretrained reads them before model.to(device), the weights
    assert plan.peaks == {"cpu": 8 * MIB + weights, "cuda:0": needed}
    assert plan.stages[0].name == "load" and plan.placement.split(plan.stages[0]) == {"cpu": 8 * MIB + weights}
    _fake_machine(monkeypatch, host=8 * MIB + weights - MIB, gpus={"cuda:0": needed + MIB})
    with pytest.raises(MemoryPlanError, match=r"on cpu in stage 'load'"):
        ensure_fits(meta, running_here=False, baseline=8 * MIB, device="cuda:0")
    split = plan_memory(meta, baseline=8 * MIB, device_map=SPLIT)  # accelerate reads onto each device directly
    assert "load" not in [stage.name for stage in split.stages] and split.peaks["cpu"] == 8 * MIB
    _fake_machine(monkeypatch, host=1 << 40, gpus={"cuda:0": needed - MIB})
    with pytest.raises(MemoryPlanError) as caught:
        ensure_fits(meta, running_here=False, baseline=8 * MIB, device="cuda")
    message = str(caught.value)
    assert "on cuda:0 in stage" in message and "(free on cuda:0)" in message and "on cpu" not in message
    assert "Ways out (the need on cuda:0):" in message and "stopped before loading any weights" in message


def test_max_memory_per_pool(meta, monkeypatch):
    _fake_machine(monkeypatch, host=1 << 40, gpus={"cuda:0": 1 << 40, "cuda:1": 1 << 40})
    with pytest.raises(MemoryPlanError, match=r"on cuda:1 .*\(max_memory\.cuda = 0\.0001 GiB\)"):
        ensure_fits(meta, running_here=False, baseline=MIB, device_map=SPLIT, max_memory={"cuda": 0.0001})
    with pytest.raises(MemoryPlanError, match=r"on cpu .*\(max_memory\.cpu = 0\.0001 GiB\)"):
        ensure_fits(meta, running_here=False, baseline=MIB, device_map=SPLIT, max_memory={"cpu": 0.0001})
    ensure_fits(meta, running_here=False, baseline=MIB, device_map=SPLIT, max_memory={"cuda:7": 0.0001})
    with pytest.raises(MemoryPlanError, match=r"on cuda:0 .* \(max_memory\.cuda:0 = 0\.001 GiB\)"):
        ensure_fits(meta, running_here=False, baseline=MIB, device_map=SPLIT,
                    max_memory={"cuda:0": 0.001, "cuda": 100})


def test_the_trainer_plans_its_device_map_before_loading(tiny_masked_lm_dir, demo_corpus, monkeypatch):
    import gradiend.training.trainer as trainer_module

    _no_weights(monkeypatch)
    monkeypatch.setattr(trainer_module, "check_devices", lambda *args, **kwargs: None)  # no GPUs here
    _fake_machine(monkeypatch, host=1 << 40, gpus={"cuda:0": 1 << 40, "cuda:1": MIB})
    args = TrainingArguments(max_steps=2, max_seeds=1, device_map=SPLIT)
    trainer = TextPredictionTrainer(str(tiny_masked_lm_dir), data=she_he_table(demo_corpus, 60), args=args,
                                    target_classes=["she", "he"], progress=False)
    with pytest.raises(MemoryPlanError, match=r"on cuda:1 in stage .*\(free on cuda:1\)"):
        trainer.train()


def _cgroup(folder: Path, limit: str, usage: int, v1: bool = False) -> Path:
    folder.mkdir()
    names = ("memory.limit_in_bytes", "memory.usage_in_bytes") if v1 else ("memory.max", "memory.current")
    (folder / names[0]).write_text(limit + "\n")
    (folder / names[1]).write_text(f"{usage}\n")
    return folder


def _mem_available() -> int:
    line = next(line for line in open("/proc/meminfo") if line.startswith("MemAvailable:"))
    return int(line.split()[1]) * 1024


def test_the_host_limit_is_the_cgroups_room(tmp_path):
    job = _cgroup(tmp_path / "job", str(5 * MIB), 4 * MIB)  # a SLURM job with --mem, 4 of 5 MiB used
    assert memory.host_available_bytes(job) == min(_mem_available(), MIB)
    unlimited = _cgroup(tmp_path / "free", "max", 4 * MIB)
    v1_unlimited = _cgroup(tmp_path / "v1", "9223372036854771712", 4 * MIB, v1=True)
    for folder in (unlimited, v1_unlimited):
        assert abs(memory.host_available_bytes(folder) - _mem_available()) < 256 * MIB  # MemAvailable moves
    v1_job = _cgroup(tmp_path / "v1job", str(3 * MIB), MIB, v1=True)
    assert memory.host_available_bytes(v1_job) == min(_mem_available(), 2 * MIB)


def test_start_up_on_a_cluster_checks_max_memory_only(tiny_masked_lm_dir, tmp_path, monkeypatch):
    _fake_machine(monkeypatch, host=0, gpus={})  # a login node with no room at all
    config = _config(tiny_masked_lm_dir, tmp_path / "results")
    with pytest.raises(ConfigError, match=r"on cpu in stage .*\(available 0\.00 GiB\)"):
        wfc.load_and_validate(config)  # the jobs would run here
    resolved = wfc.load_and_validate(config, measure_memory=False)  # a cluster's nodes plan for themselves
    assert resolved["max_memory"] is None
    with pytest.raises(ConfigError, match=r"max_memory = 0\.001 GiB"):
        wfc.load_and_validate({**config, "max_memory": 0.001}, measure_memory=False)


def test_max_memory_config_forms(tiny_masked_lm_dir, tmp_path):
    config = _config(tiny_masked_lm_dir, tmp_path / "results")
    resolved = wfc.load_and_validate({**config, "max_memory": {"cpu": 64, "cuda": 80, "cuda:1": 40}})
    assert resolved["max_memory"] == {"cpu": 64, "cuda": 80, "cuda:1": 40}
    for bad in ({"gpu": 80}, {"cuda": 0}, {}, "lots"):
        with pytest.raises(ConfigError, match="max_memory"):
            wfc.load_and_validate({**config, "max_memory": bad})


def test_gpu_memory_is_asked_in_a_child_process(tmp_path, monkeypatch):
    """At start-up (not ``held_here``) the GPU is asked in a child, so no GPU context stays in Snakemake's
    process; here the child sees a stand-in torch with two GPUs (123 bytes free, 7 held by its allocator)."""
    import os
    import sys

    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "class cuda:\n"
        "    is_available = staticmethod(lambda: True)\n"
        "    device_count = staticmethod(lambda: 2)\n"
        "    mem_get_info = staticmethod(lambda i: (123 * (i + 1), 1000))\n"
        "    memory_reserved = staticmethod(lambda i: 7)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake.parent), *sys.path]))
    assert memory.accelerator_free_bytes("cuda:1") == 2 * 123 + 7  # free + what the child's allocator holds
    assert memory.accelerator_free_bytes("cuda:2") is None and memory.accelerator_free_bytes("xpu:0") is None

"""Security: no pickle is ever loaded, remote code runs only when the config says so, and no name
from the config can make the workflow write outside its results folder.

Scope of the path rule: ``results_dir`` itself is the user's own choice of where results go (like
any output flag) and is taken as given; what the config can *not* do is escape it through a name
that becomes a path component: experiment names, demo model names and class ids (which name the
``rewritten/<class>`` folders). Seeds and learning rates are numbers, so they cannot.
"""
import ast
import copy
import importlib
import inspect
import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import gradiend
from gradiend import workflow_config as wfc
from gradiend.schema_validation import ConfigError

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("gradiend", "workflow", "benchmarks")
PICKLE_LOADERS = {("pickle", "load"), ("pickle", "loads"), ("joblib", "load"), ("dill", "load"),
                  ("cloudpickle", "load"), ("torch", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle")}
BAD_NAMES = ["../x", "..", "a/b", "/abs", "~x", ".hidden", "a\\b", ""]


def python_sources():
    files = [REPO / "Snakefile"]
    for folder in SOURCE_DIRS:
        files += sorted((REPO / folder).rglob("*.py")) + sorted((REPO / folder).rglob("*.smk"))
    return [f for f in files if f.is_file()]


def unsafe_calls(tree: ast.AST) -> list[str]:
    """Calls that unpickle: pickle/joblib/dill loads, read_pickle, numpy's allow_pickle=True, and
    torch.load without weights_only=True."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        keywords = {k.arg: k.value for k in node.keywords}
        weights_only = keywords.get("weights_only")
        if (owner, node.func.attr) == ("torch", "load"):
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"line {node.lineno}: torch.load without weights_only=True")
        elif (owner, node.func.attr) in PICKLE_LOADERS:
            found.append(f"line {node.lineno}: {owner}.{node.func.attr}")
        allow = keywords.get("allow_pickle")
        if isinstance(allow, ast.Constant) and allow.value is True:
            found.append(f"line {node.lineno}: allow_pickle=True")
    return found


def test_the_scanner_finds_pickle_loading():
    tree = ast.parse("import pickle, torch\npickle.loads(b'')\ntorch.load('x')\ntorch.load('y', weights_only=True)\n"
                     "np.load('z', allow_pickle=True)\n")
    assert unsafe_calls(tree) == ["line 2: pickle.loads", "line 3: torch.load without weights_only=True",
                                  "line 5: allow_pickle=True"]


def test_no_pickle_loading_in_the_source_tree():
    problems = {}
    for path in python_sources():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            found = unsafe_calls(ast.parse(text))
        else:  # Snakemake files are not plain Python: a textual check is enough there
            found = [w for w in ("pickle", "torch.load") if w in text]
        if found:
            problems[str(path.relative_to(REPO))] = found
    assert problems == {}


def all_modules():
    names = ["gradiend"] + [m.name for m in pkgutil.walk_packages(gradiend.__path__, "gradiend.")]
    return [importlib.import_module(name) for name in names]


def trust_remote_code_defaults():
    """(where, default) for every function, method and class in gradiend with a trust_remote_code parameter."""
    seen = {}
    for module in all_modules():
        for _, obj in inspect.getmembers(module):
            if getattr(obj, "__module__", "") != module.__name__:
                continue
            candidates = [obj] + ([v for _, v in inspect.getmembers(obj, inspect.isfunction)]
                                  if inspect.isclass(obj) else [])
            for candidate in candidates:
                try:
                    parameter = inspect.signature(candidate).parameters.get("trust_remote_code")
                except (TypeError, ValueError):
                    continue
                if parameter is not None:
                    seen[f"{module.__name__}.{getattr(candidate, '__qualname__', candidate)}"] = parameter.default
    return seen


def test_trust_remote_code_is_off_by_default_everywhere():
    defaults = trust_remote_code_defaults()
    assert "gradiend.model.loading.load_base_model" in defaults  # the scan reaches the loaders
    assert {where: d for where, d in defaults.items() if d is not False} == {}


def test_trust_remote_code_is_off_in_the_schema_and_only_the_config_turns_it_on(monkeypatch, tmp_path):
    from gradiend.stages import models

    base = {"results_dir": str(tmp_path), "experiments": {"e": {"base_model": str(tmp_path), "data": {
        "source": {"path": str(tmp_path / "corpus.txt")},
        "feature_targets": [{"id": "F", "targets": ["she"]}, {"id": "M", "targets": ["he"]}]}}}}
    (tmp_path / "corpus.txt").write_text("She ran.\n")
    (tmp_path / "tokenizer.json").write_text("{}")  # tmp_path stands in for a model folder
    assert "trust_remote_code: {type: boolean, default: false}" in wfc.SCHEMA_PATH.read_text()
    calls = []
    monkeypatch.setattr("gradiend.model.loading.load_base_model",
                        lambda reference, **kw: calls.append(kw["trust_remote_code"]) or (None, None, None))
    for setting, expected in ((None, False), (True, True)):
        config = copy.deepcopy(base)
        if setting is not None:
            config["experiments"]["e"]["trust_remote_code"] = setting
        experiment = wfc.load_and_validate(config)["experiments"]["e"]
        assert experiment["trust_remote_code"] is expected
        models.load_base(wfc.stage_config(experiment, "train_seed"))
    assert calls == [False, True]


CUSTOM_CLASSES = {"AutoConfig": "configuration_custom.CustomBertConfig",
                  "AutoModelForMaskedLM": "modeling_custom.CustomBertForMaskedLM"}


def custom_code_folder(base: Path, folder: Path, model_type: str) -> Path:
    """A copy of a tiny BERT whose config.json asks (``auto_map``) for classes defined by code in the
    folder. With ``model_type: bert`` transformers knows the type and, without trust, would silently
    load its own BertForMaskedLM instead; with a type it does not know, it would refuse on its own."""
    shutil.copytree(base, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type=model_type, auto_map=CUSTOM_CLASSES)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_custom.py").write_text(
        "from transformers import BertConfig\n\n\nclass CustomBertConfig(BertConfig):\n"
        f"    model_type = {model_type!r}\n")
    (folder / "modeling_custom.py").write_text(
        "from transformers import BertForMaskedLM\n\nfrom .configuration_custom import CustomBertConfig\n\n\n"
        "class CustomBertForMaskedLM(BertForMaskedLM):\n    config_class = CustomBertConfig\n")
    return folder


ASKED = ("asks for code of its own (`auto_map`: AutoConfig -> configuration_custom.CustomBertConfig, "
         "AutoModelForMaskedLM -> modeling_custom.CustomBertForMaskedLM), which runs only with ")


@pytest.mark.parametrize("model_type", ["bert", "custom-bert"])
def test_a_model_folder_asking_for_its_own_code_is_refused_at_start_up(tiny_masked_lm_dir, tmp_path, model_type):
    folder = custom_code_folder(tiny_masked_lm_dir, tmp_path / "custom", model_type)
    (tmp_path / "corpus.txt").write_text("She ran.\n")
    config = {"results_dir": str(tmp_path / "results"), "experiments": {"e": {"base_model": str(folder), "data": {
        "source": {"path": str(tmp_path / "corpus.txt")},
        "feature_targets": [{"id": "F", "targets": ["she"]}, {"id": "M", "targets": ["he"]}]}}}}
    with pytest.raises(ConfigError) as caught:
        wfc.load_and_validate(config)
    assert caught.value.problems == [f"config key `experiments.e.base_model`: model folder {str(folder)!r} {ASKED}"
                                     f"`experiments.e.trust_remote_code: true`; set it only if you trust that code "
                                     f"(without it transformers would refuse the folder, or load its own class in "
                                     f"place of the one asked for)"]
    config["experiments"]["e"]["trust_remote_code"] = True
    assert wfc.load_and_validate(config)["experiments"]["e"]["trust_remote_code"] is True
    assert not (tmp_path / "results").exists()


def test_snakemake_dry_run_refuses_a_model_folder_asking_for_its_own_code(tiny_masked_lm_dir, tmp_path):
    folder = custom_code_folder(tiny_masked_lm_dir, tmp_path / "custom", "bert")
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    experiment = {**default["experiments"]["gender_tiny_bert"], "base_model": str(folder)}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({**default, "experiments": {"e": experiment}}))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(config_file), "--config",
                           f"results_dir={tmp_path / 'results'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"config key `experiments.e.base_model`: model folder {str(folder)!r} {ASKED}" in done.stdout + done.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("model_type", ["bert", "custom-bert"])
def test_the_loader_refuses_a_folder_asking_for_its_own_code_before_any_weights_load(tiny_masked_lm_dir, tmp_path,
                                                                                     model_type):
    from gradiend.model.loading import load_base_model, load_tokenizer_and_objective

    folder = custom_code_folder(tiny_masked_lm_dir, tmp_path / "custom", model_type)
    (folder / "model.safetensors").write_bytes(b"never read")  # a load that reached the weights would fail on this
    for load in (load_base_model, load_tokenizer_and_objective):
        with pytest.raises(ValueError) as caught:
            load(folder)
        assert str(caught.value).startswith(f"model folder {str(folder)!r} {ASKED}`trust_remote_code=True`")


def test_trusted_code_of_a_model_folder_is_what_loads(tiny_masked_lm_dir, tmp_path, monkeypatch):
    """`trust_remote_code: true` in the config reaches from_pretrained: the folder's own class loads."""
    from gradiend.stages import models

    monkeypatch.setattr("transformers.dynamic_module_utils.HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # transformers adds its module cache to sys.path
    folder = custom_code_folder(tiny_masked_lm_dir, tmp_path / "custom", "custom-bert")
    (tmp_path / "corpus.txt").write_text("She ran.\n")
    config = {"results_dir": str(tmp_path / "results"), "experiments": {"e": {
        "base_model": str(folder), "trust_remote_code": True, "data": {
            "source": {"path": str(tmp_path / "corpus.txt")},
            "feature_targets": [{"id": "F", "targets": ["she"]}, {"id": "M", "targets": ["he"]}]}}}}
    experiment = wfc.load_and_validate(config)["experiments"]["e"]
    base = models.load_base(wfc.stage_config(experiment, "train_seed"))
    assert type(base.model).__name__ == "CustomBertForMaskedLM"
    assert type(base.model).__module__.endswith(".modeling_custom")  # the folder's code, copied by transformers
    assert base.objective.name == "masked_lm"


def test_a_pickled_base_model_is_not_loaded(tiny_masked_lm_dir, tmp_path):
    """A folder with only pytorch_model.bin (a pickle) is refused: weights are read as safetensors only."""
    from gradiend.model.loading import BaseModelNotAvailableError, load_base_model

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_masked_lm_dir, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"not even opened")
    with pytest.raises(BaseModelNotAvailableError, match="only safetensors weights are loaded"):
        load_base_model(pickled)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_become_paths_are_rejected(name, tmp_path):
    (tmp_path / "corpus.txt").write_text("She ran.\n")
    experiment = {"base_model": str(tmp_path), "data": {
        "source": {"path": str(tmp_path / "corpus.txt")},
        "feature_targets": [{"id": "F", "targets": ["she"]}, {"id": "M", "targets": ["he"]}]}}
    cases = {
        "experiment": {"results_dir": str(tmp_path), "experiments": {name: experiment}},
        "demo model": {"results_dir": str(tmp_path), "demo": {"models": {name: {"kind": "masked"}}},
                       "experiments": {"e": experiment}},
        "class id": {"results_dir": str(tmp_path), "experiments": {"e": {**experiment, "data": {
            **experiment["data"], "feature_targets": [{"id": name, "targets": ["she"]}, {"id": "M", "targets": ["he"]}]}}}},
    }
    for config in cases.values():
        with pytest.raises(ConfigError, match=r"1 problem.*\n.*is not allowed: use letters, digits, '_' and '-'"):
            wfc.load_and_validate(config)


def test_snakemake_rejects_an_experiment_named_dot_dot(tmp_path):
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    experiment = next(iter(default["experiments"].values()))
    config = {**default, "results_dir": str(tmp_path / "results"), "experiments": {"../x": experiment}}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(config_file)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "the name '../x' is not allowed" in output
    assert not (tmp_path / "x").exists() and not (tmp_path / "results").exists()

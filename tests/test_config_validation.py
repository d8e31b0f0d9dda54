"""Config validation and resolution (gradiend.workflow_config), without Snakemake."""
import copy
import inspect
from pathlib import Path

import pytest
import yaml

from gradiend import workflow_config as wfc
from gradiend.cells import cell_name
from gradiend.schema_validation import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
EXPERIMENT_CONFIGS = sorted((REPO / "config" / "experiments").glob("*.yaml"))


@pytest.fixture
def raw():
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def bert(config):
    return config["experiments"]["gender_tiny_bert"]


def problems_of(config):
    with pytest.raises(ConfigError) as caught:
        wfc.load_and_validate(config)
    return caught.value.problems


def test_default_config_resolves_with_defaults(raw):
    cfg = wfc.load_and_validate(raw)
    exp = bert(cfg)
    assert exp["name"] == "gender_tiny_bert"
    assert exp["base_model_path"] == str(Path("results") / "_demo" / "models" / "tiny-bert")
    assert exp["demo_model"] == "tiny-bert"
    assert exp["training"]["weight_decay"] == 0.01           # schema default
    assert exp["training"]["max_length"] is None             # default behind a $ref
    assert exp["decoder"]["feature_factors"] == [1.0, -1.0]  # derived: source alternative
    assert exp["decoder"]["selection"] == {"policy": "lms_threshold", "ratio": 0.99, "max_kl": None}
    assert cfg["demo"]["models"]["tiny-gpt2"]["steps"] is None
    assert "name" not in bert(raw)                           # input left untouched


@pytest.mark.parametrize("path", EXPERIMENT_CONFIGS, ids=lambda p: p.name)
def test_paper_configs_validate_without_touching_the_hub(path):
    cfg = wfc.load_config_file(path)
    for exp in cfg["experiments"].values():
        assert exp["demo_model"] is None
        assert exp["base_model_path"] == exp["base_model"]   # a Hub id passes through unchanged
        assert len(exp["decoder"]["learning_rates"]) == 16   # the full reference grid
        for stage in wfc.STAGE_KEYS:
            wfc.stage_config(exp, stage)


def test_unknown_key_is_named_with_a_suggestion(raw):
    bert(raw)["training"]["learnig_rate"] = 1.0e-3
    (problem,) = problems_of(raw)
    assert "experiments.gender_tiny_bert.training.learnig_rate" in problem
    assert "learning_rate" in problem


def test_unknown_top_level_key(raw):
    raw["resutls_dir"] = "x"
    (problem,) = problems_of(raw)
    assert "unknown config key `resutls_dir`" in problem


def test_number_written_as_string(raw):
    bert(raw)["training"]["learning_rate"] = "1e-5"
    (problem,) = problems_of(raw)
    assert "experiments.gender_tiny_bert.training.learning_rate" in problem
    assert "1.0e-5" in problem


def test_yaml_reads_1e_5_as_text_and_it_is_caught(raw):
    text = DEFAULT_CONFIG.read_text().replace("learning_rate: 1.0e-3", "learning_rate: 1e-3", 1)
    (problem,) = problems_of(yaml.safe_load(text))
    assert "training.learning_rate" in problem and "must be a number" in problem


def test_empty_learning_rate_grid(raw):
    bert(raw)["decoder"]["learning_rates"] = []
    (problem,) = problems_of(raw)
    assert problem == "config key `experiments.gender_tiny_bert.decoder.learning_rates` must not be empty"


def test_empty_feature_factor_grid(raw):
    bert(raw)["decoder"]["feature_factors"] = []
    (problem,) = problems_of(raw)
    assert "decoder.feature_factors` must not be empty" in problem


def test_duplicate_seeds(raw):
    bert(raw)["seeds"] = [0, 1, 0]
    (problem,) = problems_of(raw)
    assert "experiments.gender_tiny_bert.seeds" in problem and "duplicate" in problem and "[0]" in problem


def test_missing_local_base_model(raw, tmp_path):
    bert(raw)["base_model"] = str(tmp_path / "no_such_model")
    (problem,) = problems_of(raw)
    assert "experiments.gender_tiny_bert.base_model" in problem and "not found" in problem


@pytest.mark.parametrize("value", ["./missing_model", "../missing_model", "~/missing_model_xyz"])
def test_relative_and_home_paths_are_checked(raw, value):
    bert(raw)["base_model"] = value
    (problem,) = problems_of(raw)
    assert "base_model" in problem and value in problem


def test_existing_local_base_model_and_hub_ids_pass(raw, tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    bert(raw)["base_model"] = str(tmp_path)
    assert bert(wfc.load_and_validate(raw))["base_model_path"] == str(tmp_path)
    for hub_id in ("bert-base-cased", "dbmdz/german-gpt2"):
        bert(raw)["base_model"] = hub_id
        assert bert(wfc.load_and_validate(raw))["base_model_path"] == hub_id


def test_unknown_demo_model(raw):
    bert(raw)["base_model"] = "demo:tiny-llama"
    (problem,) = problems_of(raw)
    assert "unknown demo model 'tiny-llama'" in problem


@pytest.mark.parametrize("name", ["../x", "a/b", "_demo", ".hidden", ""])
def test_unsafe_experiment_names(raw, name):
    raw["experiments"][name] = bert(raw)
    problems = problems_of(raw)
    assert any("config key `experiments`" in p and repr(name) in p for p in problems)


def test_missing_data_file(raw):
    bert(raw)["data"]["source"] = {"path": "no/such/texts.txt"}
    (problem,) = problems_of(raw)
    assert "data.source.path" in problem and "no/such/texts.txt" in problem


def test_existing_data_file_is_the_raw_texts_input(raw, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("She reads.\n")
    bert(raw)["data"]["source"] = {"path": str(texts)}
    cfg = wfc.load_and_validate(raw)
    assert wfc.raw_texts_path(cfg, bert(cfg)) == str(texts)


def test_source_must_be_one_kind(raw):
    bert(raw)["data"]["source"] = {"path": "x.txt", "hf_dataset": "y"}
    (problem,) = problems_of(raw)
    assert "data.source` must be" in problem


def test_spacy_tags_need_a_spacy_model(raw):
    bert(raw)["data"]["feature_targets"][0]["spacy_tags"] = {"pos": "PRON"}
    (problem,) = problems_of(raw)
    assert "data.spacy_model" in problem


def test_rewrite_targets_must_name_a_target_class(raw):
    bert(raw)["rewrite"] = ["F", "X_weaken"]
    (problem,) = problems_of(raw)
    assert "rewrite" in problem and "'X_weaken'" in problem


def test_target_classes_must_be_feature_classes(raw):
    bert(raw)["data"]["target_classes"] = ["F", "Q"]
    (problem,) = problems_of(raw)
    assert "data.target_classes" in problem and "'Q'" in problem


def test_target_classes_inferred_alphabetically(raw):
    bert(raw)["data"].pop("target_classes")
    bert(raw)["rewrite"] = []
    assert bert(wfc.load_and_validate(raw))["data"]["target_classes"] == ["F", "M"]


def test_more_convergent_seeds_than_seeds(raw):
    bert(raw)["training"]["min_convergent_seeds"] = 4
    (problem,) = problems_of(raw)
    assert "training.min_convergent_seeds" in problem


def test_all_problems_are_reported_together(raw):
    bert(raw)["seeds"] = [1, 1]
    bert(raw)["training"]["max_steps"] = "100"
    assert len(problems_of(raw)) == 2


def test_feature_factor_sign_follows_source(raw):
    bert(raw)["training"]["source"] = "factual"
    assert bert(wfc.load_and_validate(raw))["decoder"]["feature_factors"] == [-1.0, 1.0]


def test_decoder_cells_and_names_round_trip(raw):
    exp = bert(wfc.load_and_validate(raw))
    cells = wfc.decoder_cells(exp)
    assert next(iter(cells)) == "base" and cells["base"] == (None, None)
    assert len(cells) == 8 * 2 + 1
    assert cells["lr~100_ff~-1"] == (100.0, -1.0)
    assert cell_name(1e-05, 1) == "lr~1e-05_ff~1"
    for name, (lr, ff) in cells.items():
        if name != "base":
            lr_text, ff_text = name.removeprefix("lr~").split("_ff~")
            assert (float(lr_text), float(ff_text)) == (lr, ff)


def test_stage_config_holds_only_what_the_stage_reads(raw):
    exp = bert(wfc.load_and_validate(raw))
    cell = wfc.stage_config(exp, "decoder_grid")
    assert "selection" not in cell["decoder"] and "learning_rates" not in cell["decoder"]
    assert set(cell["training"]) == {"source", "eval_batch_size", "torch_dtype", "max_length", "device_map",
                                    "gradiend_device"}
    chosen = wfc.stage_config(exp, "select_cell")
    assert chosen["decoder"]["selection"]["ratio"] == 0.99 and "base_model_path" not in chosen
    whole = wfc.stage_config(exp, "report")
    assert "resources" not in whole and whole["training"] == exp["training"]
    assert list(wfc.stage_config(exp, "train_seed")) == sorted(wfc.stage_config(exp, "train_seed"))


def test_stage_keys_cover_the_stage_functions():
    from gradiend import stages

    experiment_stages = set(wfc.STAGE_KEYS)
    for name in experiment_stages:
        assert callable(getattr(stages, name)), name
        assert list(inspect.signature(getattr(stages, name)).parameters)[0] == "config"


def test_resources_merge_in_order(raw):
    raw["resources"] = {"default": {"mem_mb": 1000}, "train_seed": {"gpu": 1}}
    bert(raw)["resources"] = {"train_seed": {"runtime": 5}}
    cfg = wfc.load_and_validate(raw)
    assert wfc.stage_resources(cfg, "train_seed", "gender_tiny_bert") == \
        {"gpu": 1, "mem_mb": 1000, "runtime": 5, "threads": 1}
    assert wfc.stage_resources(cfg, "train_seed", "gender_tiny_gpt2")["runtime"] == 60
    assert wfc.stage_resources(cfg, "summary")["gpu"] == 0


def test_unknown_resource_key(raw):
    raw["resources"] = {"train_seed": {"gpus": 1}}
    (problem,) = problems_of(raw)
    assert "resources.train_seed.gpus" in problem and "`gpu`" in problem


def test_config_error_is_a_value_error(raw):
    bert(raw)["seeds"] = []
    with pytest.raises(ValueError, match="seeds` must not be empty"):
        wfc.load_and_validate(copy.deepcopy(raw))

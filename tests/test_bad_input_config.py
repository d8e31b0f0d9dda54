"""Bad configuration (issue 11): each case is one ConfigError naming the key (or file and line) and
saying what to write instead, raised by ``load_and_validate`` / ``load_config_file`` and therefore
already by ``snakemake -n`` (common.smk calls them before any rule exists)."""
import shutil
import subprocess
import sys

import pytest
import yaml

from gradiend import workflow_config as wfc
from gradiend.schema_validation import ConfigError

from tests.config_support import DEFAULT_CONFIG, EXP, REPO, bert, only_problem, raw  # noqa: F401 (raw is a fixture)




def problems_of_file(path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        wfc.load_config_file(path)
    return caught.value.problems


# --- YAML keys written twice ---------------------------------------------------------------------

def test_experiment_block_written_twice(tmp_path):
    text = DEFAULT_CONFIG.read_text()
    block = text[text.index("  gender_tiny_bert:"):text.index("  gender_tiny_gpt2:")]
    path = tmp_path / "twice.yaml"
    path.write_text(text + "\n" + block)
    (problem,) = problems_of_file(path)
    assert str(path) in problem and "`experiments.gender_tiny_bert` is written twice" in problem
    assert "lines " in problem and "remove or rename one" in problem


def test_learning_rate_written_twice(tmp_path):
    text = DEFAULT_CONFIG.read_text().replace("learning_rate: 1.0e-3", "learning_rate: 1.0e-3\n      learning_rate: 1.0e-2", 1)
    path = tmp_path / "lr.yaml"
    path.write_text(text)
    (problem,) = problems_of_file(path)
    assert f"`{EXP}.training.learning_rate` is written twice" in problem


def test_duplicate_key_is_refused_by_snakemake_dry_run(tmp_path):
    text = DEFAULT_CONFIG.read_text().replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2]\n    seeds: [5]", 1)
    assert text != DEFAULT_CONFIG.read_text()
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path),
                           "--config", f"results_dir={tmp_path / 'results'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"`{EXP}.seeds` is written twice" in done.stdout + done.stderr
    assert not (tmp_path / "results").exists()


def test_shipped_yaml_files_have_no_duplicate_keys():
    from gradiend.schema_validation import check_yaml_file

    for path in [DEFAULT_CONFIG, *sorted((REPO / "config" / "experiments").glob("*.yaml")),
                 *sorted((REPO / "workflow" / "profiles").glob("*/config.yaml"))]:
        check_yaml_file(path)


def test_config_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(DEFAULT_CONFIG.read_text().replace("# ", "# caf\u00e9 ", 1).encode("latin-1"))
    (problem,) = problems_of_file(path)
    assert str(path) in problem and "not a UTF-8 text file" in problem


# --- numbers --------------------------------------------------------------------------------------

def test_integer_written_as_float(raw):
    bert(raw)["training"]["max_steps"] = 500.0
    problem = only_problem(raw)
    assert f"`{EXP}.training.max_steps`" in problem and "write it without the decimal point: 500" in problem


def test_seed_written_as_float(raw):
    bert(raw)["seeds"] = [0, 1.0]
    assert f"`{EXP}.seeds[1]` must be an integer" in only_problem(raw)


def test_boolean_where_a_number_belongs(raw):
    bert(raw)["training"]["learning_rate"] = True
    assert f"`{EXP}.training.learning_rate` must be a number, got bool True" in only_problem(raw)


def test_string_where_an_integer_belongs(raw):
    bert(raw)["training"]["eval_steps"] = "25"
    assert f"`{EXP}.training.eval_steps` must be an integer, got str '25'" in only_problem(raw)


@pytest.mark.parametrize("where, value", [
    (("training", "learning_rate"), ".nan"), (("decoder", "learning_rates"), "[0.1, .inf]"),
    (("training", "convergent_score_threshold"), "-.inf"), (("decoder", "selection"), "{ratio: .NaN}")])
def test_nan_and_infinity_anywhere(raw, where, value):
    section, key = where
    bert(raw)[section][key] = yaml.safe_load(value)
    problem = only_problem(raw)
    assert f"`{EXP}.{section}.{key}" in problem and "NaN and infinity are not allowed" in problem


# --- bounds the stages enforce, now in the schema -------------------------------------------------

def test_max_steps_zero(raw):
    bert(raw)["training"]["max_steps"] = 0
    problem = only_problem(raw)
    assert f"`{EXP}.training.max_steps`" in problem and "-1 (train num_train_epochs passes) or a step count >= 1" in problem


@pytest.mark.parametrize("where", ["seeds", "data.seed", "pre_prune.seed", "demo"])
def test_seed_beyond_numpy_range(raw, where):
    too_big = 2 ** 32
    if where == "seeds":
        bert(raw)["seeds"] = [0, too_big]
        key = f"{EXP}.seeds[1]"
    elif where == "data.seed":
        bert(raw)["data"]["seed"] = too_big
        key = f"{EXP}.data.seed"
    elif where == "pre_prune.seed":
        bert(raw)["pre_prune"] = {"seed": too_big}
        key = f"{EXP}.pre_prune.seed"
    else:
        raw["demo"] = {"corpus": {"seed": too_big}}
        key = "demo.corpus.seed"
    problem = only_problem(raw)
    assert f"`{key}`" in problem and ("4294967295" in problem)


def test_negative_data_seed(raw):
    bert(raw)["data"]["seed"] = -1
    assert f"`{EXP}.data.seed`: -1 is less than the minimum of 0" in only_problem(raw)


def test_latent_dim_the_decoder_cannot_use(raw):
    bert(raw)["training"]["latent_dim"] = 2
    assert f"`{EXP}.training.latent_dim`: 2 is greater than the maximum of 1" in only_problem(raw)


def test_unknown_activation(raw):
    bert(raw)["training"]["activation_decoder"] = "swish"
    problem = only_problem(raw)
    assert f"`{EXP}.training.activation_decoder` must be one of" in problem and "'swish'" in problem


def test_normalizing_needs_an_odd_activation(raw):
    bert(raw)["training"]["activation_encoder"] = "relu"
    problem = only_problem(raw)
    assert f"`{EXP}.training.activation_encoder`: 'relu'" in problem and "normalize_gradiend: false" in problem


def test_empty_split(raw):
    bert(raw)["data"]["split_ratios"] = {"train": 0.9, "validation": 0.0, "test": 0.1}
    problem = only_problem(raw)
    assert f"`{EXP}.data.split_ratios.validation` must be above 0" in problem


def test_min_chars_above_max_chars(raw):
    bert(raw)["data"]["preprocess"] = {"min_chars": 50, "max_chars": 10}
    assert f"`{EXP}.data.preprocess.min_chars` (50) is larger than `max_chars` (10)" in only_problem(raw)


def test_feature_factor_zero(raw):
    bert(raw)["decoder"]["feature_factors"] = [1.0, -1.0, 0.0]
    assert f"`{EXP}.decoder.feature_factors`: a feature factor of 0" in only_problem(raw)


def test_target_with_surrounding_spaces(raw):
    bert(raw)["data"]["feature_targets"][0]["targets"] = [" she"]
    problem = only_problem(raw)
    assert f"`{EXP}.data.feature_targets[0].targets[0]`" in problem and "without leading or trailing spaces" in problem


# --- class ids and targets ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["base", "policy", "skipped"])
def test_class_id_that_an_output_uses(raw, name):
    bert(raw)["data"]["feature_targets"][1]["id"] = name
    bert(raw)["rewrite"] = []
    bert(raw)["data"]["target_classes"] = ["F", name]
    problem = only_problem(raw)
    assert f"`{EXP}.data.feature_targets`: class id {name!r} is reserved" in problem


def test_class_id_that_is_another_class_weakened(raw):
    bert(raw)["data"]["feature_targets"].append({"id": "F_weaken", "targets": ["they"]})
    problem = only_problem(raw)
    assert "class id 'F_weaken' ends in '_weaken'" in problem and "rename the class" in problem


def test_class_ids_that_differ_only_in_case(raw):
    bert(raw)["data"]["feature_targets"].append({"id": "f", "targets": ["they"]})
    assert "class ids ['F', 'f'] differ only in case" in only_problem(raw)


def test_same_target_in_two_classes(raw):
    bert(raw)["data"]["feature_targets"][1]["targets"] = ["he", "She"]
    problem = only_problem(raw)
    assert "target 'she' is in class 'F' and in class 'M'" in problem


def test_same_target_with_different_spacy_tags_is_fine(raw):
    targets = bert(raw)["data"]["feature_targets"]
    targets[0].update(targets=["der"], spacy_tags={"Case": "Nom"})
    targets[1].update(targets=["der"], spacy_tags={"Case": "Dat"})
    bert(raw)["data"]["spacy_model"] = "de_core_news_sm"
    wfc.load_and_validate(raw)


# --- results_dir ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["results/{experiment}", "out{}"])
def test_results_dir_with_braces(raw, value):
    raw["results_dir"] = value
    problem = only_problem(raw)
    assert "`results_dir`" in problem and "Snakemake reads them as wildcards" in problem


def test_results_dir_that_is_a_file(raw, tmp_path):
    existing = tmp_path / "results"
    existing.write_text("not a folder")
    raw["results_dir"] = str(existing)
    problem = only_problem(raw)
    assert "`results_dir`" in problem and "is an existing file" in problem and str(existing) in problem


def test_experiment_names_that_differ_only_in_case(raw):
    raw["experiments"]["Gender_tiny_bert"] = bert(raw)
    problem = only_problem(raw)
    assert "config key `experiments`" in problem and "differ only in case" in problem


def test_local_model_folder_without_tokenizer_files(raw, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    bert(raw)["base_model"] = str(folder)
    problem = only_problem(raw)
    assert f"`{EXP}.base_model`: model folder {str(folder)!r} has no tokenizer files" in problem
    assert "['config.json', 'model.safetensors']" in problem


def test_class_cap_below_what_data_creation_accepts(raw):
    bert(raw)["data"]["max_size_per_class"] = 5
    assert f"`{EXP}.data.max_size_per_class`: 5 is less than the minimum of 10" in only_problem(raw)


def test_data_file_of_an_unknown_format(raw, tmp_path):
    texts = tmp_path / "texts.docx"
    texts.write_bytes(b"PK")
    bert(raw)["data"]["source"] = {"path": str(texts)}
    problem = only_problem(raw)
    assert f"`{EXP}.data.source.path`: {texts} has the suffix '.docx'" in problem and ".csv" in problem


def test_duplicate_key_in_a_shipped_profile_is_refused_by_snakemake(tmp_path):
    """The profiles under workflow/profiles are read again at start-up; checked on a copy of the workflow."""
    copy_root = tmp_path / "wf"
    shutil.copytree(REPO / "workflow", copy_root / "workflow", symlinks=True)
    shutil.copy(REPO / "Snakefile", copy_root / "Snakefile")
    shutil.copytree(REPO / "config", copy_root / "config")
    profile = copy_root / "workflow" / "profiles" / "slurm" / "config.yaml"
    profile.write_text(profile.read_text() + "\njobs: 7\n")
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "none",
                           "--config", f"results_dir={tmp_path / 'results'}"],
                          cwd=copy_root, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"{profile}: config key `jobs` is written twice" in done.stdout + done.stderr


def test_causal_demo_model_without_left_context(raw):
    gpt2 = raw["experiments"]["gender_tiny_gpt2"]
    gpt2["data"]["min_left_context_words"] = 0
    problem = only_problem(raw)
    assert "`experiments.gender_tiny_gpt2.data.min_left_context_words`" in problem
    assert "causal LM" in problem and "['F', 'M']" in problem
    gpt2["data"]["feature_targets"][0]["min_left_context_words"] = 2
    assert "['M']" in only_problem(raw)

"""The config files as written (issue 25): YAML 1.1 readings, floats at integer keys, one definition
in two files, a file that holds no mapping. Each is refused with the file, line and key, by
``load_config_file`` / ``check_config_files`` and by ``snakemake -n``, which then writes nothing."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gradiend import workflow_config as wfc
from gradiend.config_files import check_config_files, config_file_problems
from gradiend.schema_validation import ConfigError, validate_with_defaults

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
TEXT = DEFAULT_CONFIG.read_text()
BERT = "experiments.gender_tiny_bert"
SCHEMA = wfc.load_yaml(wfc.SCHEMA_PATH)


def edited(tmp_path, old: str, new: str, name="config.yaml") -> tuple[Path, int]:
    """The default config with the first ``old`` replaced by ``new``, and the (1-based) line of the edit."""
    assert old in TEXT, old
    path = tmp_path / name
    path.write_text(TEXT.replace(old, new, 1))
    return path, TEXT[:TEXT.index(old)].count("\n") + 1


def problems_of_file(*paths) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        if len(paths) == 1:
            wfc.load_config_file(paths[0])
        else:
            check_config_files(paths, SCHEMA)
    return caught.value.problems


def snakemake_dry_run(tmp_path, *configfiles, cwd=REPO):
    command = [sys.executable, "-m", "snakemake", "-n", "--config", f"results_dir={tmp_path / 'results'}"]
    if configfiles:
        command[4:4] = ["--configfile", *map(str, configfiles)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


# --- YAML 1.1 readings ------------------------------------------------------------------------------

REFUSED = {  # (text in the default config, what to write instead, key, what the message says)
    "octal seed": ("seeds: [0, 1, 2]", "seeds: [0, 1, 010]", f"{BERT}.seeds[2]",
                   "YAML 1.1 reads the plain `010` as the octal number 8, not 10; write 10 (or 8) without the leading zero"),
    "underscore": ("n_sentences: 6000", "n_sentences: 6_000", "demo.corpus.n_sentences",
                   "YAML 1.1 reads the plain `6_000` as the number 6000 (YAML 1.2 and most tools read it as text); "
                   "write the number you mean in plain decimal digits (e.g. 6000)"),
    "base 60": ("runtime: 30", "runtime: 1:30", "resources.default.runtime",
                "YAML 1.1 reads the plain `1:30` as the base-60 number 90 (a time such as 2:00:00 is not minutes)"),
    "binary": ("seed: 0}   # steps", "seed: 0b11}   # steps", "demo.models.tiny-bert.seed",
               "YAML 1.1 reads the plain `0b11` as the binary number 3"),
    "yes as a word": ("targets: [she]", "targets: [yes]", f"{BERT}.data.feature_targets[0].targets[0]",
                      "YAML 1.1 reads the plain `yes` as the boolean true, not as text; quote it ('yes') to keep the text"),
    "off for a block": ("pre_prune: {n_samples: 16, topk: 0.5, source: diff}", "pre_prune: off",
                        "experiments.gender_tiny_gpt2.pre_prune",
                        "YAML 1.1 reads the plain `off` as the boolean false, not as text; write null to leave it off"),
    "no as a number": ("max_size_per_class: 400", "max_size_per_class: no", f"{BERT}.data.max_size_per_class",
                       "reads the plain `no` as the boolean false, not as text; write null to leave it off"),
    "hex as text": ("targets: [he]", "targets: [0xAB]", f"{BERT}.data.feature_targets[1].targets[0]",
                    "YAML 1.1 reads the plain `0xAB` as the hexadecimal number 171; quote it ('0xAB') to keep the text"),
    "date as text": ("source: demo", "source: {texts: [2024-01-31]}", f"{BERT}.data.source.texts[0]",
                     "YAML reads the plain `2024-01-31` as a date; quote it ('2024-01-31') to keep the text"),
    "on as a name": ("  gender_tiny_bert:", "  on:", "experiments.on (a name)",
                     "YAML 1.1 reads the plain `on` as the boolean true, not as text; quote it ('on') to keep the text"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_yaml11_reading_is_refused_naming_file_line_and_key(tmp_path, case):
    old, new, key, message = REFUSED[case]
    path, line = edited(tmp_path, old, new)
    problems = [p for p in problems_of_file(path) if f"`{key.split(' ')[0]}`" in p]
    assert len(problems) == 1, problems_of_file(path)
    assert problems[0].startswith(f"{path}, line {line}: config key `{key.split(' ')[0]}`")
    assert message in problems[0]


@pytest.mark.parametrize("old, new, key, expected", [
    ("seeds: [0, 1, 2]", "seeds: [0, 1, 0x1F]", "seeds", [0, 1, 31]),             # hex where a number belongs
    ("max_steps: 150", "max_steps: -01", "training.max_steps", -1),               # the same in octal and decimal
    ("source: demo", "source: {texts: ['no', \"yes\", '010']}", "data.source.texts", ["no", "yes", "010"]),  # quoted
    ("min_left_context_words: 0", "min_left_context_words: 0\n      balance: no", "data.balance", False),
    ("max_size_per_class: 400", "max_size_per_class: 400\n      preprocess: {split_to_sentences: on}",
     "data.preprocess.split_to_sentences", True),                               # a boolean where one belongs
])
def test_yaml11_readings_where_the_schema_expects_what_they_give_are_accepted(tmp_path, old, new, key, expected):
    path, _ = edited(tmp_path, old, new)
    experiment = wfc.load_config_file(path)["experiments"]["gender_tiny_bert"]
    for part in key.split("."):
        experiment = experiment[part]
    assert experiment == expected


def test_a_yaml11_reading_is_refused_by_snakemake_dry_run(tmp_path):
    path, line = edited(tmp_path, "seeds: [0, 1, 2]", "seeds: [0, 1, 010]")
    code, output = snakemake_dry_run(tmp_path, path)
    assert code != 0
    assert f"{path}, line {line}: config key `{BERT}.seeds[2]`: YAML 1.1 reads the plain `010` as the octal number 8" \
        in output
    assert not (tmp_path / "results").exists()


# --- integers -------------------------------------------------------------------------------------

def integer_positions(node, path=()):
    """Dotted paths of every key whose schema takes an integer but no other number (``*`` for a name
    of the caller's choosing, ``[]`` for a list entry), with that key's schema."""
    if "$ref" in node:
        node = {**SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    branches = [node] + [b for keyword in ("anyOf", "oneOf") for b in node.get(keyword, [])]
    for branch in branches:
        resolved = branch
        if "$ref" in branch:
            resolved = SCHEMA["$defs"][branch["$ref"].rsplit("/", 1)[1]]
        for name, sub in resolved.get("properties", {}).items():
            yield from _positions_of(sub, path + (name,))
        if isinstance(resolved.get("additionalProperties"), dict):
            yield from _positions_of(resolved["additionalProperties"], path + ("*",))
        if isinstance(resolved.get("items"), dict):
            yield from _positions_of(resolved["items"], path + ("[]",))


def _positions_of(sub, path):
    types = wfc_types(sub)
    if "integer" in types and "number" not in types:
        yield ".".join(path), sub
    yield from integer_positions(sub, path)


def wfc_types(sub) -> set[str]:
    """The types a key's own schema (its $ref and anyOf/oneOf branches) declares."""
    if "$ref" in sub:
        sub = {**SCHEMA["$defs"][sub["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in sub.items() if k != "$ref"}}
    declared = sub.get("type", [])
    types = {declared} if isinstance(declared, str) else set(declared)
    for branch in sub.get("anyOf", []) + sub.get("oneOf", []):
        types |= wfc_types(branch)
    return types


def a_valid_integer(sub) -> int:
    if "$ref" in sub:
        sub = {**SCHEMA["$defs"][sub["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in sub.items() if k != "$ref"}}
    for branch in [sub] + sub.get("anyOf", []) + sub.get("oneOf", []):
        if isinstance(branch.get("const"), int):
            return branch["const"]
        if "minimum" in branch and "integer" in wfc_types(branch):
            return int(branch["minimum"])
    return 1


def test_every_integer_key_refuses_a_float():
    positions = dict(integer_positions(SCHEMA))
    # the enumeration reaches the demo block, the resources, the experiments and lists of seeds
    for known in ("demo.corpus.n_sentences", "demo.corpus.seed", "demo.models.*.steps", "demo.models.*.seed",
                  "resources.default.threads", "experiments.*.seeds.[]", "experiments.*.training.max_steps",
                  "experiments.*.benchmarks.seat.permutations", "comparisons.*.max_size"):
        assert known in positions, sorted(positions)
    accepted_floats = []
    for dotted, sub in positions.items():
        wrapper = {"$defs": SCHEMA["$defs"], "type": "object", "properties": {"value": sub}}
        integer = a_valid_integer(sub)
        validate_with_defaults({"value": integer}, wrapper)
        try:
            validate_with_defaults({"value": float(integer)}, wrapper)
            accepted_floats.append(dotted)
        except ConfigError as error:
            assert f"write it without the decimal point: {integer}" in str(error), (dotted, str(error))
    assert accepted_floats == []


def test_floats_at_integer_keys_are_refused_by_snakemake_dry_run(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(TEXT.replace("n_sentences: 6000", "n_sentences: 100.0").replace("max_steps: 150", "max_steps: -1.0", 1))
    code, output = snakemake_dry_run(tmp_path, path)
    assert code != 0
    assert "config key `demo.corpus.n_sentences` must be an integer, got float 100.0 (write it without the decimal " \
           "point: 100)" in output
    assert f"config key `{BERT}.training.max_steps` must be -1" in output and "got -1.0" in output
    assert not (tmp_path / "results").exists()


def test_a_key_one_level_too_high_is_pointed_to_where_it_belongs():
    config = yaml.safe_load(TEXT)
    config["demo"]["n_sentences"] = 100
    with pytest.raises(ConfigError) as caught:
        wfc.load_and_validate(config)
    assert caught.value.problems == ["unknown config key `demo.n_sentences` (did you mean `demo.corpus.n_sentences`?)"]


# --- one definition in two files --------------------------------------------------------------------

def test_an_experiment_defined_in_two_files_is_refused_naming_both(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text(TEXT)
    second = tmp_path / "b.yaml"
    second.write_text("experiments:\n  other: {base_model: 'demo:tiny-bert', data: {feature_targets: []}}\n"
                      "  gender_tiny_bert:\n    base_model: 'demo:tiny-gpt2'\n")
    line = TEXT[:TEXT.index("  gender_tiny_bert:")].count("\n") + 1
    (problem,) = problems_of_file(first, second)
    assert problem.startswith(f"config key `{BERT}` is defined in {first} (line {line}) and in {second} (line 3): "
                              "Snakemake merges --configfile files key by key")


def test_files_that_define_different_experiments_are_accepted(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text(TEXT)
    second = tmp_path / "b.yaml"
    second.write_text("results_dir: elsewhere\nexperiments:\n  other: {base_model: 'demo:tiny-bert'}\n")
    assert config_file_problems([first, second], SCHEMA) == []


def test_an_experiment_defined_in_two_files_is_refused_by_snakemake_dry_run(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text(TEXT)
    second, _ = edited(tmp_path, "seeds: [0, 1, 2]", "seeds: [3]", name="b.yaml")
    code, output = snakemake_dry_run(tmp_path, first, second)
    assert code != 0
    assert f"config key `{BERT}` is defined in {first} (line" in output and f"and in {second} (line" in output
    assert "config key `experiments.gender_tiny_gpt2` is defined in" in output
    assert not (tmp_path / "results").exists()


# --- a file that holds no mapping -------------------------------------------------------------------

@pytest.mark.parametrize("text, found", [
    ("- gender_tiny_bert\n- gender_tiny_gpt2\n", "a list of 2 entries"),
    ("experiments\n", "the single value 'experiments'"),
    ("", "nothing (the file is empty or only comments)"),
    ("# experiments: {}\n", "nothing (the file is empty or only comments)"),
    ("results_dir: a\n---\nresults_dir: b\n", "2 YAML documents (separated by `---`); write one"),
])
def test_a_file_that_holds_no_mapping_is_named_with_what_it_holds(tmp_path, text, found):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert problems_of_file(path) == [f"{path}: a config file must be a YAML mapping of keys (`results_dir`, "
                                      f"`experiments`, ...) at the top level, but it holds {found}"]


def test_the_default_config_that_holds_no_mapping_is_named_by_snakemake(tmp_path):
    """Snakemake reads the embedded default inside the Snakefile, after the check (on a copy of the workflow)."""
    copy_root = tmp_path / "wf"
    shutil.copytree(REPO / "workflow", copy_root / "workflow", symlinks=True)
    shutil.copy(REPO / "Snakefile", copy_root / "Snakefile")
    (copy_root / "config").mkdir()
    (copy_root / "config" / "config.yaml").write_text("- gender_tiny_bert\n")
    code, output = snakemake_dry_run(tmp_path, cwd=copy_root)
    assert code != 0
    assert "config/config.yaml: a config file must be a YAML mapping of keys" in output and "a list of 1 entry" in output
    assert not (tmp_path / "results").exists()


def test_the_command_line_check_names_a_configfile_snakemake_refuses_without_a_name(tmp_path):
    """Snakemake refuses a --configfile that holds no mapping before it reads the workflow, naming no
    file; `python -m gradiend.workflow_config FILE...` (what config/README.md points to) names it."""
    good = tmp_path / "good.yaml"
    good.write_text(TEXT)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n- 3\n")
    done = subprocess.run([sys.executable, "-m", "gradiend.workflow_config", str(good), str(bad)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{bad}: a config file must be a YAML mapping" in done.stderr and "a list of 3 entries" in done.stderr
    done = subprocess.run([sys.executable, "-m", "gradiend.workflow_config", str(good)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"{good}: no problem found"

"""Every stage in workflow order on a tiny random BERT (pre-pruned, two seeds, a 1 x 2 grid):
content checks on each output file (columns, JSON keys, shapes, links) and CPU determinism."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gradiend import stages
from gradiend.evaluation.encoder import COLUMNS as ENCODED_COLUMNS
from gradiend.util.io import load_safetensors
from tests.objectives_support import hand_encoded
from tests.stages_support import StageRun, experiment_config

PNG_MAGIC = b"\x89PNG"


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    root = tmp_path_factory.mktemp("stages")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus[:1000]) + "\n", encoding="utf-8")
    experiment = experiment_config(
        tiny_masked_lm_dir, corpus, root / "results", seeds=[0, 1],
        training={"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 4, "eval_steps": 2,
                  "learning_rate": 1.0e-3},
        pre_prune={"n_samples": 8, "topk": 0.25, "source": "diff"},
        decoder={"learning_rates": [1.0], "max_size_training_like": 12, "max_size_neutral": 12})
    stage_run = StageRun(experiment, corpus, root / "results" / "exp")
    stage_run.run_all(pruned=True)
    return stage_run


def read(run, *parts):
    return json.loads(Path(run.path(*parts)).read_text(encoding="utf-8"))


def is_png(path) -> bool:
    return Path(path).read_bytes()[:4] == PNG_MAGIC


def test_pre_prune_mask_and_summary(run, tiny_masked_lm_dir):
    from transformers import AutoModelForMaskedLM

    from gradiend.model.backbone import mapped_parameters

    mask = load_safetensors(run.path("prune", "mask.safetensors"))
    importance = load_safetensors(run.path("prune", "importance.safetensors"))
    params = mapped_parameters(AutoModelForMaskedLM.from_pretrained(tiny_masked_lm_dir))
    assert sorted(mask) == sorted(importance) == sorted(params)
    assert all(mask[n].dtype == torch.bool and mask[n].shape == p.shape for n, p in params.items())
    summary = read(run, "prune", "summary.json")
    kept = sum(int(m.sum()) for m in mask.values())
    assert summary["kept"] == kept == sum(summary["per_parameter"].values())
    assert summary["input_dim"] == sum(p.numel() for p in params.values())
    assert kept == -(-summary["input_dim"] // 4)  # topk 0.25, rounded up
    assert summary["seed"] == 0 and summary["source"] == "diff"


def test_seed_checkpoints_are_pre_pruned_and_complete(run):
    kept = read(run, "prune", "summary.json")["kept"]
    for seed in run.seeds:
        folder = Path(run.path("seeds", str(seed), "model"))
        assert {"config.json", "model.safetensors", "training.json", "timing.json"} <= {p.name for p in folder.iterdir()}
        training = read(run, "seeds", str(seed), "model", "training.json")
        assert [r["step"] for r in training["history"]] == [0, 2, 4]
        assert training["seed"] == seed and training["input_dim"]["trained"] == kept
        assert {"converged", "reason", "best_step"} <= set(training["convergence_info"])
        assert is_png(run.path("seeds", str(seed), "convergence.png"))
        assert not any(p.name.startswith(".") for p in folder.parent.iterdir())  # no temporary leftovers


def test_encoder_outputs(run):
    from gradiend.stages.models import load_base, with_checkpoint
    from gradiend.data.rows import select_rows

    cut = run.cut("evaluate_encoders")
    base = load_base(cut)
    table = pd.read_parquet(run.path("data", "training.parquet"))
    validation = select_rows(table, ["F", "M"], "validation", "alternative").frame  # every validation pair row
    for seed in run.seeds:
        metrics = read(run, "seeds", str(seed), "encoder", "metrics.json")
        assert {"correlation", "validation_correlation", "accuracy", "mean_by_target_class", "neutral_mean",
                "n_by_type", "mean_by_class", "seed"} <= set(metrics)
        assert set(metrics["mean_by_target_class"]) == {"F", "M"} and metrics["seed"] == seed
        # what select_seed ranks by: Pearson of the validation rows' encodings (by the hand reference) and labels
        model = with_checkpoint(cut, base, run.path("seeds", str(seed), "model"))
        hand = [hand_encoded(model, m, f, a, "alternative")
                for m, f, a in zip(validation["masked"], validation["factual"], validation["alternative"])]
        expected = np.corrcoef(hand, validation["label"].to_numpy(float))[0, 1]
        assert metrics["n_validation"] == len(validation) and metrics["validation_correlation"] == pytest.approx(
            expected, abs=1e-4)
        encoded = pd.read_parquet(run.path("seeds", str(seed), "encoder", "encoded.parquet"))
        # the numbers, recomputed from the encoded rows: Pearson over the training rows, means by label
        training = encoded[encoded["type"] == "training"]
        expected = np.corrcoef(training["encoded"].to_numpy(float), training["label"].to_numpy(float))[0, 1]
        assert metrics["correlation"] == pytest.approx(expected, abs=1e-9)
        assert metrics["mean_by_target_class"] == pytest.approx(
            {"F": training.loc[training["label"] == 1, "encoded"].mean(),
             "M": training.loc[training["label"] == -1, "encoded"].mean()}, abs=1e-9)
        neutral = encoded[encoded["type"] != "training"]
        assert metrics["neutral_mean"] == pytest.approx(neutral["encoded"].mean(), abs=1e-9)
        assert list(encoded.columns) == list(ENCODED_COLUMNS)
        assert set(encoded["type"]) == {"training", "neutral_training_masked", "neutral_dataset"}
        assert set(encoded.loc[encoded["type"] == "training", "label"]) == {1, -1}
        assert encoded["encoded"].between(-1, 1).all()
        assert metrics["n_by_type"] == encoded["type"].value_counts().sort_index().to_dict()
        assert is_png(run.path("seeds", str(seed), "encoder", "distributions.png"))


def test_select_seed_copies_the_chosen_checkpoint(run):
    choice = read(run, "best", "seed.json")
    assert choice["seed"] in run.seeds
    assert set(choice["scores"]) == {str(s) for s in run.seeds}
    scores = choice["scores"][str(choice["seed"])]
    assert {"converged", "training_score", "validation_correlation", "test_correlation"} <= set(scores)
    assert str(choice["seed"]) in choice["reason"]
    pool = [s for s in run.seeds if choice["scores"][str(s)]["converged"]] or run.seeds
    best = max(pool, key=lambda s: abs(choice["scores"][str(s)]["validation_correlation"]))
    assert choice["seed"] == best
    for name in ("model.safetensors", "training.json", "config.json"):
        chosen = Path(run.path("seeds", str(choice["seed"]), "model", name)).read_bytes()
        assert Path(run.path("best", "model", name)).read_bytes() == chosen


def test_select_seed_fails_when_asked(run, tmp_path):
    cut = run.cut("select_seed")
    cut["training"].update(min_convergent_seeds=2, fail_on_non_convergence=True)
    # whatever the two seeds did, the last one is made non-convergent here, so the check always runs
    models = [run.path("seeds", str(s), "model") for s in run.seeds]
    stats = read(run, "seeds", str(run.seeds[-1]), "model", "training.json")
    stats["convergence_info"]["converged"] = False
    (tmp_path / "unconverged").mkdir()
    (tmp_path / "unconverged" / "training.json").write_text(json.dumps(stats), encoding="utf-8")
    models[-1] = str(tmp_path / "unconverged")
    with pytest.raises(RuntimeError, match=r"only [01] of 2 seed\(s\) converged.*fail_on_non_convergence"):
        stages.select_seed(cut, seeds=run.seeds, models=models,
                           metrics=[run.path("seeds", str(s), "encoder", "metrics.json") for s in run.seeds],
                           choice=str(tmp_path / "seed.json"), best_model=str(tmp_path / "model"))
    assert not (tmp_path / "seed.json").exists()


def test_decoder_cells(run):
    cells = {name: json.loads(Path(path).read_text()) for name, path in run.cells().items()}
    table = pd.read_parquet(run.path("data", "training.parquet"))
    test = table[table["split"] == "test"]
    # each class's distinct masked texts of the test split, capped at decoder.max_size_training_like (12)
    n_rows = {c: min(12, test.loc[test["factual_class"] == c, "masked"].nunique()) for c in ("F", "M")}
    assert list(cells) == ["base", "lr~1_ff~1", "lr~1_ff~-1"]
    assert cells["base"]["is_base"] and cells["base"]["learning_rate"] == 0.0
    for name, cell in cells.items():
        assert cell["id"] == name                        # the file name is the cell's id
        assert {"lms", "probs_by_dataset", "class_feature_factors", "finite", "n_rows_by_dataset"} <= set(cell)
        assert set(cell["probs_by_dataset"]) == {"F", "M"}
        assert all(set(p) == {"F", "M"} for p in cell["probs_by_dataset"].values())
        assert cell["class_feature_factors"] == {"F": 1.0, "M": -1.0}  # source alternative
        assert cell["n_rows_by_dataset"] == n_rows
    assert cells["lr~1_ff~-1"]["feature_factor"] == -1.0
    # a rewrite changes the probabilities, and the base cell is what the model gives unmodified
    assert cells["lr~1_ff~1"]["probs_by_dataset"] != cells["base"]["probs_by_dataset"]


def test_select_cell_summary(run):
    summary = read(run, "decoder", "summary.json")
    assert {"F", "F_weaken", "M", "M_weaken", "base", "policy"} <= set(summary)
    assert summary["policy"]["name"] == "lms_threshold"
    for key in ("F", "F_weaken", "M", "M_weaken"):
        entry = summary[key]
        assert entry["cell"] in run.cells() and entry["cell"] != "base"
        assert entry["strengthen"] == (not key.endswith("_weaken"))
        assert entry["base_lms"] == summary["base"]["lms"]
    assert summary["F"]["feature_factor"] == 1.0 and summary["F_weaken"]["feature_factor"] == -1.0
    assert is_png(run.path("decoder", "probability_shifts.png"))


def test_rewritten_model_loads_and_differs_only_where_mapped(run, tiny_masked_lm_dir):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    base = dict(AutoModelForMaskedLM.from_pretrained(tiny_masked_lm_dir).named_parameters())
    folder = Path(run.path("rewritten", "F"))
    rewritten = dict(AutoModelForMaskedLM.from_pretrained(folder).named_parameters())
    AutoTokenizer.from_pretrained(folder)
    mask = load_safetensors(run.path("prune", "mask.safetensors"))
    changed = {n for n, p in rewritten.items() if not torch.equal(p, base[n])}
    assert changed and changed <= set(mask)
    name = next(iter(changed))
    assert torch.equal(rewritten[name][~mask[name]], base[name][~mask[name]])  # pruned-away entries untouched
    card = (folder / "README.md").read_text()
    facts = json.loads((folder / "gradiend_rewrite.json").read_text())
    summary = read(run, "decoder", "summary.json")
    assert facts["learning_rate"] == summary["F"]["learning_rate"] and facts["target_class"] == "F"
    assert facts["base_model"] == str(tiny_masked_lm_dir) and "strengthen `F`" in card


def test_provenance_is_reproducible(run, tmp_path):
    facts = read(run, "provenance.json")
    assert {"config", "gradiend_version", "packages", "git_commit", "devices", "inputs", "base_model"} <= set(facts)
    assert set(facts["inputs"]) == {"texts", "training", "neutral"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v["sha256"]) for v in facts["inputs"].values())
    assert facts["base_model"]["found"] and "model.safetensors" in facts["base_model"]["files"]
    import hashlib

    folder = Path(run.experiment["base_model_path"])
    assert facts["base_model"]["files"] == {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                                            for name in ("config.json", "model.safetensors")}
    assert facts["packages"]["torch"] and facts["config"]["seeds"] == run.seeds
    again = tmp_path / "provenance.json"
    stages.provenance(run.cut("provenance"), inputs={"texts": run.corpus, "training": run.path("data", "training.parquet"),
                                                     "neutral": run.path("data", "neutral.parquet")},
                      provenance_file=str(again))
    assert again.read_bytes() == Path(run.path("provenance.json")).read_bytes()


def test_report_names_the_choice_and_links_resolve(run):
    text = Path(run.path("report.md")).read_text(encoding="utf-8")
    seed = read(run, "best", "seed.json")["seed"]
    assert f"Chosen seed: **{seed}**" in text
    assert "## Pre-pruning" in text and "`F_weaken`" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and not any(Path(link).is_absolute() for link in links)
    for link in links:
        assert (Path(run.path("report.md")).parent / link).exists(), link


def test_summary_table(run, tmp_path):
    cut = {"exp": run.cut("summary")}
    stages.summary(cut, experiments=["exp"], data_summaries=[run.path("data", "summary.json")],
                   seed_choices=[run.path("best", "seed.json")], decoder_summaries=[run.path("decoder", "summary.json")],
                   csv=str(tmp_path / "summary.csv"), tex=str(tmp_path / "summary.tex"))
    table = pd.read_csv(tmp_path / "summary.csv")
    assert len(table) == 1 and table.loc[0, "experiment"] == "exp"
    assert {"c0", "c1", "chosen_seed", "test_correlation", "base_lms", "c0_learning_rate", "c0_weaken_value",
            "c1_lms"} <= set(table.columns)
    assert table.loc[0, "c0"] == "F" and table.loc[0, "c0_learning_rate"] == 1.0
    tex = (tmp_path / "summary.tex").read_text()
    decoder = read(run, "decoder", "summary.json")
    entry, weaken = decoder["F"], decoder["M_weaken"]
    rows_of = decoder["base"]["probs_by_dataset"]  # P(target) on the rows each metric reads

    def dagger(chosen):  # a fallback choice (no cell kept the LMS threshold) is marked
        return r"$^\dagger$" if chosen["fallback"] else ""

    lines = tex.splitlines()
    f_row = next(i for i, line in enumerate(lines) if line.startswith(r"F (\textit{"))
    m_row = next(i for i, line in enumerate(lines) if line.startswith(r"M (\textit{"))
    assert lines[f_row].endswith(
        f"& strengthen & {entry['learning_rate']:g}{dagger(entry)} & ${entry['feature_factor']:+g}$ & "
        f"{rows_of['M']['F']:.3f} & {entry['value']:.3f} & {entry['base_lms']:.3f} & {entry['lms']:.3f} \\\\")
    assert lines[m_row + 1] == (
        f" & weaken & {weaken['learning_rate']:g}{dagger(weaken)} & ${weaken['feature_factor']:+g}$ & "
        f"{rows_of['M']['M']:.3f} & {1 - weaken['value']:.3f} & {weaken['base_lms']:.3f} & {weaken['lms']:.3f} \\\\")


def test_training_is_deterministic_on_cpu(run, tmp_path):
    stages.train_seed(run.cut("train_seed"), seed=0, training=run.path("data", "training.parquet"),
                      mask=run.path("prune", "mask.safetensors"), model=str(tmp_path / "model"),
                      convergence=str(tmp_path / "convergence.png"))
    for name in ("model.safetensors", "training.json"):
        assert (tmp_path / "model" / name).read_bytes() == Path(run.path("seeds", "0", "model", name)).read_bytes()
    # config.json records the base model relative to each checkpoint: equal once resolved
    configs = [json.loads(Path(folder, "config.json").read_text()) for folder in
               (tmp_path / "model", run.path("seeds", "0", "model"))]
    for config, folder in zip(configs, (tmp_path / "model", run.path("seeds", "0", "model"))):
        for key in ("base_model", "tokenizer"):
            local = Path(folder) / config["metadata"][key]
            config["metadata"][key] = str(local.resolve()) if local.exists() else config["metadata"][key]
    assert configs[0] == configs[1]

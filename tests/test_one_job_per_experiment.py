"""The scoring stages as one job per experiment (``job_layout: per_experiment``, the local default):
``evaluate_encoders``, ``decoder_grid`` and ``rewrite_models``.

Each must write the same bytes as the fan-out (one job per seed, per learning rate plus ``base``, per
rewrite target). With its cache the grid recomputes only the cells of a changed learning rate, while a
changed checkpoint, data file or config recomputes every cell that reads it (counted by wrapping the
evaluator's scoring methods).
"""
import json
from pathlib import Path

import pandas as pd
import pytest

from gradiend import stages
from gradiend.cells import cell_name
from gradiend.evaluation.decoder import DecoderEvaluator
from tests.stages_support import StageRun, experiment_config


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    root = tmp_path_factory.mktemp("grid_job")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus[:600]) + "\n", encoding="utf-8")
    experiment = experiment_config(
        tiny_masked_lm_dir, corpus, root / "results", seeds=[0, 1],
        training={"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 4, "eval_steps": 2,
                  "learning_rate": 1.0e-3},
        decoder={"learning_rates": [1.0, 0.1], "max_size_training_like": 10, "max_size_neutral": 10})
    stage_run = StageRun(experiment, corpus, root / "results" / "exp")
    stage_run.data()
    for seed in stage_run.seeds:
        stage_run.train(seed)
    return stage_run


@pytest.fixture
def scored(monkeypatch):
    """Names of the cells the evaluator actually scores (base included), in order."""
    names = []
    cell, base = DecoderEvaluator.evaluate_cell, DecoderEvaluator.evaluate_base

    def evaluate_cell(self, learning_rate, feature_factor, datasets=None):
        names.append(cell_name(learning_rate, feature_factor))
        return cell(self, learning_rate, feature_factor, datasets)

    def evaluate_base(self):
        names.append("base")
        return base(self)

    monkeypatch.setattr(DecoderEvaluator, "evaluate_cell", evaluate_cell)
    monkeypatch.setattr(DecoderEvaluator, "evaluate_base", evaluate_base)
    return names


def inputs(run, seed=0, neutral=None) -> dict:
    return {"model": run.path("seeds", str(seed), "model"), "training": run.path("data", "training.parquet"),
            "neutral": neutral or run.path("data", "neutral.parquet")}


def grid(run, folder: Path, learning_rates, *, config=None, cache=True, **changed) -> dict[str, bytes]:
    """The one-job grid over ``learning_rates`` x (1, -1) into ``folder``; cell name -> file bytes."""
    names = ["base", *(cell_name(lr, ff) for ff in (1.0, -1.0) for lr in learning_rates)]
    paths = [folder / f"{name}.json" for name in names]
    stages.decoder_grid(config or run.cut("decoder_grid"), **inputs(run, **changed), cells=[str(p) for p in paths],
                        cache=str(folder.parent / "cache") if cache else None)
    return {p.stem: p.read_bytes() for p in paths}


def test_one_grid_job_writes_the_bytes_of_the_fan_out(run, tmp_path, scored):
    """The same cells as the fan-out: base without the checkpoint, then one job per learning rate."""
    data = inputs(run)
    model = data.pop("model")
    stages.decoder_grid(run.cut("decoder_grid"), **data, model=None, cells=[str(tmp_path / "fan" / "base.json")])
    for lr in (1.0, 0.1):
        stages.decoder_grid(run.cut("decoder_grid"), model=model,
                            cells=[str(tmp_path / "fan" / f"{cell_name(lr, ff)}.json") for ff in (1.0, -1.0)],
                            **data)
    fan_out = {p.stem: p.read_bytes() for p in (tmp_path / "fan").glob("*.json")}
    scored.clear()
    one_job = grid(run, tmp_path / "cells", [1.0, 0.1], cache=False)
    assert one_job == fan_out and len(one_job) == 5
    assert sorted(scored) == sorted(one_job)  # every cell scored once, in one job
    assert json.loads(one_job["lr~0.1_ff~-1"])["probs_by_dataset"] != json.loads(one_job["base"])["probs_by_dataset"]


def test_a_changed_learning_rate_recomputes_only_its_cells(run, tmp_path, scored):
    first = grid(run, tmp_path / "cells", [1.0, 0.1])
    assert sorted(scored) == sorted(first)
    scored.clear()
    second = grid(run, tmp_path / "cells", [1.0, 0.5])  # 0.1 -> 0.5
    assert sorted(scored) == ["lr~0.5_ff~-1", "lr~0.5_ff~1"]
    kept = ("base", "lr~1_ff~1", "lr~1_ff~-1")
    assert {n: second[n] for n in kept} == {n: first[n] for n in kept}
    scored.clear()
    assert grid(run, tmp_path / "fresh", [1.0, 0.5], cache=False) == second  # a copy is what a recomputation writes
    assert len(scored) == 5


def test_a_changed_checkpoint_data_or_config_recomputes_the_cells_that_read_it(run, tmp_path, scored):
    first = grid(run, tmp_path / "cells", [1.0])
    scored.clear()
    other_seed = grid(run, tmp_path / "cells", [1.0], seed=1)
    assert sorted(scored) == ["lr~1_ff~-1", "lr~1_ff~1"]  # the base cell does not read the checkpoint
    assert other_seed["base"] == first["base"] and other_seed["lr~1_ff~1"] != first["lr~1_ff~1"]
    scored.clear()
    config = json.loads(json.dumps(run.cut("decoder_grid")))
    config["decoder"]["max_size_neutral"] = 6
    grid(run, tmp_path / "cells", [1.0], seed=1, config=config)
    assert sorted(scored) == ["base", "lr~1_ff~-1", "lr~1_ff~1"]
    scored.clear()
    fewer = pd.read_parquet(run.path("data", "neutral.parquet")).iloc[:-3]
    fewer.to_parquet(tmp_path / "neutral.parquet")
    grid(run, tmp_path / "cells", [1.0], seed=1, config=config, neutral=str(tmp_path / "neutral.parquet"))
    assert sorted(scored) == ["base", "lr~1_ff~-1", "lr~1_ff~1"]
    scored.clear()
    timing = Path(run.path("seeds", "1", "model", "timing.json"))
    saved = timing.read_bytes()
    timing.write_text('{"train_seconds": 123.4}')  # a rerun's wall-clock times: no result changes
    try:
        grid(run, tmp_path / "cells", [1.0], seed=1, config=config, neutral=str(tmp_path / "neutral.parquet"))
    finally:
        timing.write_bytes(saved)
    assert scored == []  # nothing changed: every cell is copied
    (tmp_path / "cache" / "lr~1_ff~1.json").write_text('{"fingerprint": "')  # a damaged entry: scored again
    again = grid(run, tmp_path / "cells", [1.0], seed=1, config=config, neutral=str(tmp_path / "neutral.parquet"))
    assert scored == ["lr~1_ff~1"] and json.loads(again["lr~1_ff~1"])["id"] == "lr~1_ff~1"


def test_one_rewrite_job_writes_the_bytes_of_one_job_per_target(run, tmp_path):
    folder = tmp_path / "decoder"
    names = ["base", *(cell_name(1.0, ff) for ff in (1.0, -1.0))]
    cells = {name: str(folder / "cells" / f"{name}.json") for name in names}
    stages.decoder_grid(run.cut("decoder_grid"), **inputs(run), cells=list(cells.values()))
    (folder / "seed.json").write_text('{"seed": 0}')
    stages.select_cell(run.cut("select_cell"), base=cells.pop("base"), cells=list(cells.values()),
                       seed_choice=str(folder / "seed.json"), summary=str(folder / "summary.json"),
                       plot=str(folder / "shifts.png"))
    targets = ["F", "M_weaken", "M"]
    common = {"model": run.path("seeds", "0", "model"), "decoder_summary": str(folder / "summary.json")}
    stages.rewrite_models(run.cut("rewrite_models"), targets=targets, **common,
                          output_dirs=[str(tmp_path / "one_job" / t) for t in targets])
    for target in targets:
        stages.rewrite_models(run.cut("rewrite_models"), targets=[target], **common,
                              output_dirs=[str(tmp_path / "each" / target)])

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    one_job, each = files(tmp_path / "one_job"), files(tmp_path / "each")
    assert one_job == each and len(one_job) >= 3 * 4
    # as many different weights as different chosen cells: no rewrite carries over into the next
    summary = json.loads((folder / "summary.json").read_text())
    chosen = {(summary[t]["learning_rate"], summary[t]["feature_factor"]) for t in targets}
    assert len({one_job[f"{t}/model.safetensors"] for t in targets}) == len(chosen) >= 2

    # A demo base model: the card says this pipeline built it and carries the project's license.
    cut = {**run.cut("rewrite_models"), "base_model": "demo:tiny-bert", "demo_model": "tiny-bert"}
    stages.rewrite_models(cut, targets=["F"], **common, output_dirs=[str(tmp_path / "demo" / "F")])
    card = (tmp_path / "demo" / "F" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\nlicense: apache-2.0\ntags:")
    assert "`demo:tiny-bert`, a small model built from scratch by this pipeline's `demo_model` rule" in card
    source = json.loads((tmp_path / "demo" / "F" / "gradiend_rewrite.json").read_text())["base_model_source"]
    assert (source["kind"], source["folder"]) == ("built", str(Path(run.experiment["base_model_path"]).resolve()))


def test_one_encoder_job_writes_the_bytes_of_one_job_per_seed(run, tmp_path):
    def outputs(folder: str) -> dict[str, list[str]]:
        return {kind: [str(tmp_path / folder / str(seed) / name) for seed in run.seeds]
                for kind, name in (("metrics", "metrics.json"), ("encoded", "encoded.parquet"),
                                   ("distributions", "distributions.png"))}

    data = {"training": run.path("data", "training.parquet"), "neutral": run.path("data", "neutral.parquet")}
    models = [run.path("seeds", str(seed), "model") for seed in run.seeds]
    stages.evaluate_encoders(run.cut("evaluate_encoders"), seeds=run.seeds, models=models, **data,
                             **outputs("one_job"))
    for i, seed in enumerate(run.seeds):
        stages.evaluate_encoders(run.cut("evaluate_encoders"), seeds=[seed], models=[models[i]], **data,
                                 **{kind: [paths[i]] for kind, paths in outputs("each").items()})

    def files(folder: str) -> dict[str, bytes]:
        root = tmp_path / folder
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    one_job, each = files("one_job"), files("each")
    assert one_job == each and len(one_job) == 3 * len(run.seeds)
    correlations = [json.loads(one_job[f"{seed}/metrics.json"])["correlation"] for seed in run.seeds]
    assert correlations[0] != correlations[1]  # each seed's own checkpoint, not the first one's

"""The adaptive decoder search: the bracketed driver on a known trade-off, and the stages that run it
(cached trials, selection on validation rows, test-split numbers, a bound no cell meets)."""
import json
import math
from pathlib import Path

import pytest

from gradiend.cells import cell_name
from gradiend.evaluation.search import RELATIVE_TOLERANCE, search
from gradiend.evaluation.selection import BoundNotMet, strengthen_metric
from tests.reliability_support import TINY_TRAINING
from tests.stages_support import StageRun, experiment_config

BOUNDARY = 0.3  # the synthetic rewrite keeps the bound while lr · |ff| <= 0.3


def synthetic(lr, ff):
    strength = lr * abs(ff)
    return {"id": cell_name(lr, ff), "learning_rate": lr, "feature_factor": ff,
            "metric": 1 - math.exp(-strength), "kl": strength ** 2}


def run_search(grid_rates=(0.01, 0.1, 1.0), scales=(1.0,), trials=20, scored=None):
    def score(lr, ff):
        if scored is not None:
            scored.append((lr, ff))
        return synthetic(lr, ff)

    return search([synthetic(lr, 1.0) for lr in grid_rates], sign=1.0, scales=scales, trials=trials,
                  admits=lambda cell: cell["kl"] <= BOUNDARY ** 2, metric=lambda cell: cell["metric"], score=score)


def test_bisects_between_the_best_admissible_cell_and_the_next_larger_one():
    rates = [c["learning_rate"] for c in run_search()]
    # sqrt(0.1 · 1) = 0.3162 is outside, sqrt(0.1 · 0.3162) = 0.1778 inside, sqrt(0.1778 · 0.3162) = 0.2371 ...
    assert rates[:3] == [0.3162, 0.1778, 0.2371]
    inside = [lr for lr in rates if lr <= BOUNDARY]
    outside = [lr for lr in rates if lr > BOUNDARY]
    best, upper = max(inside), min(outside)
    # it stops by itself once the bracket around the bound is narrower than the tolerance
    assert len(rates) < 20 and best < BOUNDARY < upper and upper / best <= 1 + RELATIVE_TOLERANCE


def test_more_trials_repeat_the_earlier_ones():
    assert run_search(trials=5) == run_search(trials=12)[:5]
    with pytest.raises(ValueError, match="at least 1"):
        run_search(trials=0)


def test_expands_when_every_grid_cell_is_admissible_and_contracts_when_none_is():
    assert [c["learning_rate"] for c in run_search(grid_rates=(0.01, 0.02), trials=3)] == [0.04, 0.08, 0.16]
    assert [c["learning_rate"] for c in run_search(grid_rates=(2.0, 4.0), trials=3)] == [1.0, 0.5, 0.25]


def test_rays_of_other_feature_factors_take_turns():
    scored = []
    run_search(scales=(1.0, 2.0), trials=4, scored=scored)
    # scale 2 starts where w's share equals the best grid cell's: lr 0.1 / 2 at ff 2
    assert scored[:4] == [(0.3162, 1.0), (0.05, 2.0), (0.1778, 1.0), (0.1, 2.0)]


def test_a_ray_starts_from_the_grid_cells_at_its_feature_factor():
    scored = []
    grid = [synthetic(lr, ff) for ff in (1.0, 2.0) for lr in (0.01, 0.1, 1.0)]
    search(grid, sign=1.0, scales=(1.0, 2.0), trials=6, admits=lambda cell: cell["kl"] <= BOUNDARY ** 2,
           metric=lambda cell: cell["metric"], score=lambda lr, ff: scored.append((lr, ff)) or synthetic(lr, ff))
    assert len(scored) == 6 and not {(c["learning_rate"], c["feature_factor"]) for c in grid} & set(scored)
    # at ff 2 the grid keeps the bound up to lr 0.1 and breaks it at 1: bisect there, not start at 0.1 / 2
    assert scored[:2] == [(0.3162, 1.0), (0.3162, 2.0)]


# --------------------------------------------------------------------------- the stages


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    root = tmp_path_factory.mktemp("search")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus[:600]) + "\n", encoding="utf-8")
    experiment = experiment_config(tiny_masked_lm_dir, corpus, root / "results", seeds=[0], training=dict(TINY_TRAINING),
                                   decoder={"learning_rates": [1.0, 0.01], "max_size_training_like": 8,
                                            "max_size_neutral": 8, "search": "adaptive", "adaptive": {"trials": 2}})
    stage_run = StageRun(experiment, corpus, root / "results" / "exp")
    stage_run.data()
    stage_run.train(0)
    stage_run.evaluate(0)
    stage_run.select_seed()
    stage_run.decoder_grid()
    cells = {n: json.loads(Path(p).read_text()) for n, p in stage_run.cells().items()}
    # a KL bound between the grid's two strengths of ff 1: the search has a bracket to refine
    weak, strong = cells["lr~0.01_ff~1"]["kl"], cells["lr~1_ff~1"]["kl"]
    assert 0 < weak < strong
    stage_run.experiment["decoder"]["selection"]["max_kl"] = math.sqrt(weak * strong)
    stage_run.grid = cells
    return stage_run


def read(run, *parts):
    return json.loads(Path(run.path(*parts)).read_text(encoding="utf-8"))


def _rescored(run, root, name, split):
    """Cell ``name`` scored again on a copy of the experiment whose ``split`` rows all read one unrelated text."""
    import shutil

    import pandas as pd

    copy = StageRun(run.experiment, run.corpus, root)
    shutil.copytree(run.root, root)
    table_file = copy.path("data", "training.parquet")
    table = pd.read_parquet(table_file)
    table.loc[table["split"] == split, "masked"] = "the soup was [MASK] ."
    table.to_parquet(table_file)
    copy.decoder_cell(name)
    return json.loads(Path(copy.cells()[name]).read_text())


def test_validation_scores_read_the_validation_rows_and_the_test_scores_the_test_rows(run, tmp_path):
    name = "lr~1_ff~1"
    clean = run.grid[name]
    assert set(clean["validation"]["probs_by_dataset"]) == {"F", "M"}
    validation_poisoned = _rescored(run, tmp_path / "validation", name, "validation")
    test_poisoned = _rescored(run, tmp_path / "test", name, "test")
    assert validation_poisoned["probs_by_dataset"] == clean["probs_by_dataset"]
    assert validation_poisoned["validation"]["probs_by_dataset"] != clean["validation"]["probs_by_dataset"]
    assert test_poisoned["validation"] == clean["validation"]
    assert test_poisoned["probs_by_dataset"] != clean["probs_by_dataset"]


def test_trials_are_cached_cell_files_and_a_rerun_with_more_reuses_them(run):
    run.decoder_search()
    first = read(run, "decoder", "search.json")
    trials = Path(run.path("decoder", "trials"))
    assert first["targets"]["F"]["trials"] and len(first["targets"]["F"]["trials"]) <= 2
    for key, target in first["targets"].items():
        for name in target["trials"]:
            stored = json.loads((trials / f"{name}.json").read_text())
            assert stored["cell"] == first["cells"][name] and stored["cell"]["id"] == name
    before = {p.name: p.stat().st_mtime_ns for p in trials.iterdir()}

    run.experiment["decoder"]["adaptive"]["trials"] = 4
    run.decoder_search()
    again = read(run, "decoder", "search.json")
    for key, target in again["targets"].items():
        earlier = first["targets"][key]["trials"]
        assert target["trials"][:len(earlier)] == earlier
        # an earlier trial (of this direction or another) is copied, never scored again
        assert target["n_scored"] + target["n_reused"] == len(target["trials"])
    assert sum(t["n_scored"] for t in again["targets"].values()) == \
        len({n for t in again["targets"].values() for n in t["trials"]}) - len(before)
    assert all((trials / name).stat().st_mtime_ns == mtime for name, mtime in before.items())


def test_the_choice_is_made_on_validation_rows_and_reported_on_test_rows(run):
    run.decoder_search()
    run.select_cell()
    summary = read(run, "decoder", "summary.json")
    searched = read(run, "decoder", "search.json")
    every = {**{n: c for n, c in run.grid.items() if n != "base"}, **searched["cells"]}
    max_kl = run.experiment["decoder"]["selection"]["max_kl"]
    entry = summary["F"]
    chosen = every[entry["id"]]
    admissible = [c for c in every.values() if c["feature_factor"] == 1.0 and c["kl"] <= max_kl]
    best = max(strengthen_metric(c["validation"], "F", ["M"]) for c in admissible)
    assert entry["selection_split"] == "validation" and chosen["kl"] <= max_kl
    assert entry["selection_value"] == strengthen_metric(chosen["validation"], "F", ["M"]) == best
    assert entry["value"] == strengthen_metric(chosen, "F", ["M"])  # the test rows' number
    assert entry["kl"] == chosen["kl"] and entry["damage"] == chosen["damage"]
    assert summary["search"]["mode"] == "adaptive" and summary["search"]["trials"]["F"] == searched["targets"]["F"]["trials"]
    assert Path(run.path("decoder", "tradeoff.png")).read_bytes()[:4] == b"\x89PNG"


def test_a_bound_that_no_cell_meets_names_the_least_damaging_cell(run):
    run.decoder_search()
    run.experiment["decoder"]["selection"]["max_kl"] = 1e-12
    try:
        with pytest.raises(BoundNotMet) as error:
            run.select_cell()
    finally:
        run.experiment["decoder"]["selection"]["max_kl"] = math.sqrt(run.grid["lr~0.01_ff~1"]["kl"]
                                                                     * run.grid["lr~1_ff~1"]["kl"])
    message = str(error.value)
    searched = read(run, "decoder", "search.json")
    candidates = [c for c in [*run.grid.values(), *searched["cells"].values()] if c["feature_factor"] == 1.0
                  and not c["is_base"]]
    least = min(candidates, key=lambda c: c["kl"])
    assert "strengthen class 'F'" in message and "kl <= 1e-12" in message
    assert f"the least damaging is {least['id']} (lms {least['lms']:.4g}, kl {least['kl']:.4g}" in message
    assert "decoder.adaptive.trials" in message


def test_the_report_shows_base_vs_rewritten_damage_with_intervals_and_the_tradeoff(run):
    from gradiend.stages.report import fmt

    run.decoder_search()
    run.select_cell()
    for target in run.experiment["rewrite"]:
        run.rewrite(target)
    run.provenance()
    run.report()
    text = Path(run.path("report.md")).read_text(encoding="utf-8")
    summary = read(run, "decoder", "summary.json")
    entry, base = summary["F"], summary["base"]
    ci = entry["damage"]["ci"]
    expected = (f"| `F` ({entry['cell']}) | {fmt(entry['lms'])} [{fmt(ci['lms'][0])}, {fmt(ci['lms'][1])}] | "
                f"{fmt(entry['kl'])} [{fmt(ci['kl'][0])}, {fmt(ci['kl'][1])}] | "
                f"{fmt(entry['perplexity'])} [{fmt(ci['perplexity'][0])}, {fmt(ci['perplexity'][1])}] |")
    assert expected in text
    assert f"| base | {fmt(base['lms'])} [" in text and "| 0 [0, 0] |" in text  # the base model's own KL
    assert f"{fmt(entry['base_value'])} → {fmt(entry['value'])} [{fmt(entry['value_ci'][0])}," in text
    assert "chosen on the validation rows, every metric below on the test rows" in text
    assert "![trade-off](decoder/tradeoff.png)" in text
    facts = json.loads(Path(run.path("rewritten", "F", "gradiend_rewrite.json")).read_text())
    assert facts["kl_to_base"] == entry["kl"] and facts["perplexity_after"] == entry["perplexity"]

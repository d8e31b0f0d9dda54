"""Bias-benchmark stages: score the base model and each rewritten model, then one table across all.

``benchmark_model`` runs once per evaluated model (``base`` and every ``rewrite`` target) and writes
``results/<experiment>/benchmarks/<model>.json``; ``benchmark_table`` puts every experiment × model
side by side in ``results/benchmarks.csv`` and ``.tex``. Scoring: :mod:`gradiend.evaluation.bias`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from gradiend.stages.report import table, with_interval
from gradiend.util.logging import get_logger

logger = get_logger("gradiend.stages")

BENCHMARK_NAMES = {"stereoset": "StereoSet", "crows_pairs": "CrowS-Pairs", "seat": "SEAT"}


def _sources(config: Mapping, stereoset: str | None, crows_pairs: str | None, seat: Sequence[str] | None) -> dict:
    """The ``benchmarks`` block with the local files the workflow passed as inputs (if any)."""
    block = dict(config["benchmarks"])
    for name, path in (("stereoset", stereoset), ("crows_pairs", crows_pairs)):
        if path is not None:
            block[name] = {"path": path}
    if seat:
        block["seat"] = {**(block.get("seat") or {}), "paths": list(seat)}
    return block


def _file_hash(source) -> dict:
    """``{"sha256": ...}`` of a local benchmark file (provenance of the scores); nothing for a hub dataset."""
    from gradiend.model.base_reference import sha256_file

    if isinstance(source, Mapping) and "paths" in source:  # SEAT: one hash per test file
        return {"sha256": [sha256_file(Path(p).expanduser()) for p in source["paths"]]}
    if isinstance(source, Mapping) and "path" in source:
        return {"sha256": sha256_file(Path(source["path"]).expanduser())}
    return {}


def benchmark_model(config: dict, *, model_name: str, model_dir: str | None, output: str,
                    stereoset: str | None = None, crows_pairs: str | None = None,
                    seat: Sequence[str] | None = None) -> None:
    """Score one model on the experiment's bias benchmarks.

    Config: ``base_model, base_model_path, trust_remote_code, training.{torch_dtype, device_map}, benchmarks``
    (``benchmarks.{stereoset, crows_pairs, seat, bias_types, bootstrap, seed, batch_size}``).
    Reads: the benchmark files (``stereoset`` / ``crows_pairs``: local paths, ``seat``: a list of
    SEAT test files, overriding the config's; otherwise the config's ``path``/``paths`` or
    ``hf_dataset``), all read and checked before the
    model is loaded, and ``model_dir`` (a rewritten model folder; ``None`` = ``base_model_path``).
    Writes ``output`` (``results/<experiment>/benchmarks/<model_name>.json``): ``experiment, model,
    base_model, kind`` (masked/causal), ``likelihood`` (``pseudo-log-likelihood`` for masked LMs,
    ``log-likelihood`` for causal LMs), ``bias_types, bootstrap, bootstrap_seed, confidence``, and
    per configured benchmark: StereoSet ``{source, sha256, ss, lms, icat, n, ci: {ss, lms, icat},
    subsets}``, CrowS-Pairs ``{source, sha256, score, n, n_stereo, n_antistereo, ci: {score}}``
    (``sha256`` of a local file only), SEAT ``{source, sha256, mean_abs_effect_size, n_tests,
    tests: {name: {categories, effect_size, p_value, exact_p, n, ci: {effect_size}}}}``
    (scores in percent, 50 = unbiased; ``ci`` = ``[low, high]`` of the bootstrap 95 % interval).
    """
    from gradiend.evaluation.bias.formats import _describe, load_benchmarks
    from gradiend.evaluation.bias.scores import CONFIDENCE, run_benchmarks
    from gradiend.stages.models import load_base
    from gradiend.util.io import write_json

    block = _sources(config, stereoset, crows_pairs, seat)
    benchmarks = load_benchmarks(block)  # every file checked before any model is loaded
    base = load_base(config, model_dir)
    scores = run_benchmarks(base.model, base.tokenizer, benchmarks, bootstrap=block["bootstrap"], seed=block["seed"],
                            batch_size=block["batch_size"],
                            seat_permutations=(block.get("seat") or {}).get("permutations", 10000))
    result = {"experiment": config["name"], "model": model_name, "base_model": config["base_model"],
              "kind": scores["kind"], "likelihood": scores["likelihood"], "bias_types": list(block["bias_types"]),
              "bootstrap": block["bootstrap"], "bootstrap_seed": block["seed"], "confidence": CONFIDENCE}
    for name in BENCHMARK_NAMES:
        if name in scores:
            source = list(block[name]["paths"]) if name == "seat" else _describe(config["benchmarks"][name])
            result[name] = {"source": source, **_file_hash(block[name]), **scores[name]}
            logger.info("%s on %s: %s", name, model_name,
                        {k: v for k, v in scores[name].items() if k in ("ss", "lms", "icat", "score", "n")})
    write_json(output, result)


# --- the table across experiments -------------------------------------------------------------------

def benchmark_row(result: Mapping) -> dict:
    """One model's row of ``benchmarks.csv``."""
    row = {"experiment": result["experiment"], "base_model": result["base_model"], "model": result["model"],
           "likelihood": result["likelihood"]}
    for name, keys in (("stereoset", ("ss", "lms", "icat")), ("crows_pairs", ("score",))):
        block = result.get(name) or {}
        row[f"{name}_n"] = block.get("n")
        for key in keys:
            row[f"{name}_{key}"] = block.get(key)
            interval = (block.get("ci") or {}).get(key) or (None, None)
            row[f"{name}_{key}_low"], row[f"{name}_{key}_high"] = interval
    seat = result.get("seat") or {}
    row["seat_n_tests"] = seat.get("n_tests")
    row["seat_mean_abs_effect_size"] = seat.get("mean_abs_effect_size")
    for name, test in sorted((seat.get("tests") or {}).items()):
        row[f"seat_{name}_effect_size"] = test["effect_size"]
        row[f"seat_{name}_p_value"] = test["p_value"]
    return row


def benchmark_cells(row: Mapping) -> list[str]:
    """SS, LMS, ICAT and CrowS-Pairs of a row, each with its interval."""
    cells = [with_interval(row[c], row[f"{c}_low"], row[f"{c}_high"])
             for c in ("stereoset_ss", "stereoset_lms", "stereoset_icat", "crows_pairs_score")]
    return [*cells, with_interval(row.get("seat_mean_abs_effect_size"), None, None)]


BENCHMARK_HEADER = ["StereoSet SS", "StereoSet LMS", "StereoSet ICAT", "CrowS-Pairs", "SEAT mean |d|"]


def latex_benchmark_table(rows: Sequence[Mapping]) -> str:
    """A ``tabular``: per experiment and model SS, LMS, ICAT and CrowS-Pairs with their 95 % intervals."""
    from gradiend.stages.summary import _latex, latex_tabular

    header = ["Experiment", "Base model", "Model", *BENCHMARK_HEADER]
    body = [[_latex(c) for c in (row["experiment"], row["base_model"], row["model"], *benchmark_cells(row))]
            for row in rows]
    return latex_tabular("lll" + "r" * len(BENCHMARK_HEADER), header, body)


def benchmark_table(config: dict, *, results: Sequence[str], csv: str, tex: str) -> None:
    """Every benchmarked model of every experiment side by side.

    Config: ``{experiment: cut}`` with ``base_model`` per benchmarked experiment (not read; it
    reruns the table when an experiment's model changes).
    Reads: ``results``, the ``benchmarks/<model>.json`` files in experiment order, ``base`` first.
    Writes ``csv`` (:func:`benchmark_row` columns: ``experiment, base_model, model, likelihood,
    stereoset_n``, ``stereoset_{ss,lms,icat}`` each with ``_low``/``_high``, ``crows_pairs_n,
    crows_pairs_score, crows_pairs_score_low, crows_pairs_score_high, seat_n_tests,
    seat_mean_abs_effect_size``, then ``seat_<test>_effect_size`` and ``seat_<test>_p_value`` per
    SEAT test) and ``tex`` (a LaTeX ``tabular``: each score with its 95 % interval in brackets).
    """
    import pandas as pd

    from gradiend.util.io import atomic_path, read_json

    rows = [benchmark_row(read_json(path)) for path in results]
    with atomic_path(csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(tex) as tmp:
        tmp.write_text(latex_benchmark_table(rows), encoding="utf-8")


def benchmark_report_section(results: Sequence[str], link) -> list[str]:
    """The report's "Bias benchmarks" section for one experiment's result files (empty without any)."""
    from gradiend.util.io import read_json

    if not results:
        return []
    loaded = [read_json(path) for path in results]
    rows = [[f"[{r['model']}]({link(path)})", *benchmark_cells(benchmark_row(r))] for r, path in zip(loaded, results)]
    first = loaded[0]
    counts = [f"{BENCHMARK_NAMES[n]} {first[n]['n']} items ({first[n]['source']})"
              for n in ("stereoset", "crows_pairs") if n in first]
    if "seat" in first:
        counts.append(f"SEAT {first['seat']['n_tests']} tests (mean |effect size| over them)")
    return ["## Bias benchmarks", "",
            f"Bias types {first['bias_types']}; {', '.join(counts)}. Scores in percent (SS and CrowS-Pairs: "
            f"50 = unbiased), sentences scored by {first['likelihood']}; brackets: bootstrap "
            f"{int(first['confidence'] * 100)} % intervals over {first['bootstrap']} resamples.", "",
            table(["model", *BENCHMARK_HEADER], rows), ""]

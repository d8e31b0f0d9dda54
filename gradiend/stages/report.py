"""The ``report`` stage: one Markdown page per experiment that a person reads first.

It only reads files the other stages wrote; every figure is linked by a path relative to the
report, so the results folder can be moved or zipped as a whole.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def fmt(value, digits: int = 4) -> str:
    """A number for a table: ``n/a`` for None, ``g``-style with ``digits`` significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return str(value)


def with_interval(value, low, high, digits: int = 3) -> str:
    """``52.1 [48.3, 56.0]`` (the value alone without an interval; ``n/a`` without a value)."""
    text = fmt(value, digits)
    return text if value is None or low is None else f"{text} [{fmt(low, digits)}, {fmt(high, digits)}]"


def table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table; ``|`` inside cells is escaped."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


class _Links:
    """Paths relative to the report's folder."""

    def __init__(self, report_file: str):
        self.root = Path(report_file).resolve().parent

    def __call__(self, path: str) -> str:
        return Path(os.path.relpath(Path(path).resolve(), self.root)).as_posix()

    def image(self, alt: str, path: str) -> str:
        return f"![{alt}]({self(path)})"


def _data_section(summary: dict) -> list[str]:
    splits = sorted({s for per in summary["rows_per_class_and_split"].values() for s in per})
    rows = [[cls, *[per.get(s, 0) for s in splits], sum(per.values())]
            for cls, per in summary["rows_per_class_and_split"].items()]
    creator = summary.get("creator") or {}
    scanned = f" from {creator['sentences']} sentences" if "sentences" in creator else ""
    return ["## Data", "", f"{summary['rows']} training rows{scanned}.", "",
            table(["class", *splits, "total"], rows), ""]


def _prune_section(prune: dict | None) -> list[str]:
    if prune is None:
        return []
    share = prune["kept"] / prune["input_dim"] if prune["input_dim"] else 0.0
    return ["## Pre-pruning", "",
            f"Kept {prune['kept']} of {prune['input_dim']} base-model entries ({share:.1%}; topk "
            f"{fmt(prune['topk'])}, threshold {fmt(prune['threshold'])}, {prune['n_samples']} rows, source "
            f"`{prune['source']}`). Every seed trains on this mask.", ""]


def _seed_section(seeds, choice: dict, metrics: list[dict], convergence_plots, distribution_plots, link) -> list[str]:
    chosen = choice["seed"]
    rows = []
    for seed, encoder in zip(seeds, metrics):
        score = choice["scores"][str(seed)]
        rows.append([f"**{seed}** (chosen)" if seed == chosen else seed, fmt(score["converged"]),
                     score["convergence_reason"], fmt(score["training_score"]), fmt(score["best_step"]),
                     fmt(score["validation_correlation"]), fmt(encoder["correlation"]), fmt(encoder["accuracy"]),
                     fmt(encoder.get("neutral_mean"))])
    figures = []
    for seed, convergence, distributions in zip(seeds, convergence_plots, distribution_plots):
        figures += [f"Seed {seed}:", "", link.image(f"convergence of seed {seed}", convergence),
                    link.image(f"encoded values of seed {seed}", distributions), ""]
    return ["## Seeds", "",
            f"Chosen seed: **{chosen}**. {choice['reason']}.", "",
            table(["seed", "converged", "convergence", "best training correlation", "best step",
                   "validation correlation", "test correlation", "test accuracy", "neutral mean"], rows),
            "", *figures]


def _encoder_section(chosen: int, metrics: dict) -> list[str]:
    means = metrics.get("mean_by_target_class") or {}
    rows = [[cls, fmt(mean)] for cls, mean in means.items()]
    rows += [[f"neutral ({kind})", fmt(mean)] for kind, mean in sorted(metrics.get("neutral_mean_by_type", {}).items())]
    return [f"## Encoder of seed {chosen}", "",
            f"Test correlation {fmt(metrics['correlation'])}, accuracy {fmt(metrics['accuracy'])}, "
            f"validation correlation {fmt(metrics['validation_correlation'])}.", "",
            table(["rows", "mean encoded value"], rows), ""]


def _damage_section(summary: dict) -> list[str]:
    """Base vs every chosen rewrite on each damage measure, with the bootstrap intervals."""
    base = summary["base"]
    if not base.get("damage"):
        return []
    entries = [(key, e) for key, e in summary.items() if isinstance(e, dict) and "learning_rate" in e]
    damage = base["damage"]

    def row(name, values, damage_block):
        ci = (damage_block or {}).get("ci") or {}
        return [name, *(with_interval(values.get(m), *(ci.get(m) or (None, None)), digits=4)
                        for m in ("lms", "kl", "perplexity"))]

    rows = [row("base", base, damage)] + [row(f"`{key}` ({e['cell']})", e, e.get("damage")) for key, e in entries]
    return [f"Damage on {damage['n_texts']} neutral texts: LMS, mean KL(base ‖ rewritten) of the "
            f"{'masked-token' if damage['perplexity_kind'] == 'pseudo-perplexity' else 'next-token'} distribution at "
            f"{damage['n_kl_positions']} positions, and {damage['perplexity_kind']} over "
            f"{damage['n_perplexity_tokens']} tokens; brackets: bootstrap {int(damage['confidence'] * 100)} % "
            f"intervals over {damage['bootstrap']} resamples of the texts.", "",
            table(["model", "LMS", "KL", damage["perplexity_kind"]], rows), ""]


def _decoder_section(summary: dict, shifts: str, tradeoff: str | None, link) -> list[str]:
    base = summary["base"]
    search = summary.get("search") or {"mode": "grid", "selection_split": "test"}
    rows = []
    for key, entry in summary.items():
        if not isinstance(entry, dict) or "learning_rate" not in entry:
            continue
        direction = "strengthen" if entry["strengthen"] else "weaken"
        metric = f"P({entry['target_class']})" if entry["strengthen"] else f"1 − P({entry['target_class']})"
        rows.append([f"`{key}`", direction, metric, fmt(entry["learning_rate"]), fmt(entry["feature_factor"]),
                     f"{fmt(entry['base_value'])} → "
                     f"{with_interval(entry['value'], *(entry.get('value_ci') or (None, None)), digits=4)}",
                     f"{fmt(entry['base_lms'])} → {fmt(entry['lms'])}", fmt(entry["fallback"]),
                     entry["cell"] + (" (trial)" if entry.get("trial") else "")])
    policy = summary.get("policy", {})
    bound = ""
    if policy.get("name") == "lms_threshold":
        bound = f" (ratio {policy['ratio']}" + (f", KL ≤ {policy['max_kl']}" if policy.get("max_kl") else "") + ")"
    if search["mode"] == "adaptive":
        n_trials = len({name for names in search["trials"].values() for name in names})  # directions share trials
        how = (f"Adaptive search: {search['n_grid_cells']} grid cells and {n_trials} trials; chosen on the "
               f"validation rows, every metric below on the test rows.")
    else:
        how = "Chosen among the grid cells on the test rows."
    figures = [link.image("probability shifts", shifts)] + ([link.image("trade-off", tradeoff)] if tradeoff else [])
    return ["## Decoder", "",
            f"Base model LMS {fmt(base['lms'])}. Policy `{policy.get('name')}`{bound}. {how}", "",
            table(["target", "direction", "metric", "learning rate", "feature factor", "metric before → after",
                   "LMS before → after", "fallback", "cell"], rows), "",
            *_damage_section(summary), *figures, ""]


def _rewritten_section(rewritten: Sequence[str], link) -> list[str]:
    from gradiend.evaluation.model_card import PROVENANCE_FILE
    from gradiend.util.io import read_json

    if not rewritten:
        return []
    rows = []
    for folder in rewritten:
        facts = read_json(Path(folder) / PROVENANCE_FILE)
        rows.append([f"[{Path(folder).name}]({link(folder)}/)", facts["target_class"],
                     "strengthen" if facts["strengthen"] else "weaken", fmt(facts["learning_rate"]),
                     fmt(facts["feature_factor"]), f"{fmt(facts['lms_before'])} → {fmt(facts['lms_after'])}"])
    return ["## Rewritten models", "",
            "Hugging Face model folders (`from_pretrained` loads them); each has a model card (README.md).", "",
            table(["folder", "class", "direction", "learning rate", "feature factor", "LMS before → after"], rows),
            ""]


def _provenance_section(provenance: dict, path: str, link) -> list[str]:
    packages = ", ".join(f"{k} {v}" for k, v in provenance["packages"].items() if v)
    return ["## Provenance", "",
            f"gradiend {provenance['gradiend_version']}, Python {provenance['python']}, git commit "
            f"`{provenance['git_commit'] or 'n/a'}`; {packages}. Details: [{Path(path).name}]({link(path)}).", ""]


def report(config: dict, *, provenance_file: str, data_summary: str, prune_summary: str | None,
           seeds: Sequence[int], convergence_plots: Sequence[str], encoder_metrics: Sequence[str],
           distribution_plots: Sequence[str], seed_choice: str, decoder_summary: str,
           probability_shifts: str, rewritten: Sequence[str], report_file: str,
           benchmark_results: Sequence[str] = (), tradeoff: str | None = None,
           capability_results: Sequence[str] = ()) -> None:
    """Write the experiment's Markdown report.

    Config: the whole resolved experiment (without ``resources``).
    Reads every listed file (per-seed lists in the order of ``seeds``; ``prune_summary`` is ``None``
    without pre-pruning; ``rewritten`` holds one folder per ``rewrite`` target, each with its
    ``gradiend_rewrite.json``; ``benchmark_results`` / ``capability_results``: the experiment's
    ``benchmarks/<model>.json`` / ``capability/<model>.json`` files, ``base`` first, empty without a
    ``benchmarks`` / ``capability`` block; ``tradeoff``: ``decoder/tradeoff.png``, if drawn).
    Writes ``report_file`` (``results/<experiment>/report.md``): data sizes, pre-pruning, per-seed
    convergence and encoder metrics with the chosen seed, the decoder choice per target (metric and
    LMS before → after), base vs rewritten on every damage measure with bootstrap intervals, the
    trade-off figure, the rewritten models, the bias benchmarks and capability checks (if any),
    provenance, and the figures linked by paths relative to the report.
    """
    from gradiend.stages.bias import benchmark_report_section
    from gradiend.stages.capability import capability_report_section
    from gradiend.util.io import atomic_path, read_json

    link = _Links(report_file)
    metrics = [read_json(path) for path in encoder_metrics]
    choice = read_json(seed_choice)
    chosen_metrics = metrics[list(seeds).index(choice["seed"])]
    c0, c1 = config["data"]["target_classes"]
    lines = [f"# GRADIEND report: {config['name']}", "",
             f"Base model `{config['base_model']}`; feature `{c0}` (+1) vs `{c1}` (−1); "
             f"seeds {list(seeds)}; training source `{config['training']['source']}`, target "
             f"`{config['training']['target']}`.", ""]
    lines += _data_section(read_json(data_summary))
    lines += _prune_section(None if prune_summary is None else read_json(prune_summary))
    lines += _seed_section(seeds, choice, metrics, convergence_plots, distribution_plots, link)
    lines += _encoder_section(choice["seed"], chosen_metrics)
    lines += _decoder_section(read_json(decoder_summary), probability_shifts, tradeoff, link)
    lines += _rewritten_section(rewritten, link)
    lines += benchmark_report_section(benchmark_results, link)  # nothing without benchmark results
    lines += capability_report_section(capability_results, link)  # nothing without capability results
    lines += _provenance_section(read_json(provenance_file), provenance_file, link)
    with atomic_path(report_file) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")

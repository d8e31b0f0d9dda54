"""The ``summary`` stage: one row per experiment as CSV, and per experiment a paper table in LaTeX."""
from __future__ import annotations

from typing import Mapping, Sequence

from gradiend.cells import rewrite_key

ENTRY_FIELDS = ("cell", "learning_rate", "feature_factor", "value", "lms", "fallback")
# (class index, weaken) -> the column prefix of that rewrite: c0, c0_weaken, c1, c1_weaken
SLOTS = {(i, weaken): rewrite_key(f"c{i}", weaken) for i in (0, 1) for weaken in (False, True)}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
MISSING = "--"
FALLBACK_MARK = r"$^\dagger$"


def target_probabilities(entry: Mapping) -> tuple[float, float]:
    """P(target class tokens) of the base model and of the rewrite, on the rows the metric reads:
    the other class's rows when strengthening (the metric itself), the class's own rows when
    weakening (the metric is 1 − P)."""
    if entry["strengthen"]:
        return entry["base_value"], entry["value"]
    return 1.0 - entry["base_value"], 1.0 - entry["value"]


def summary_row(name: str, config: Mapping, data: Mapping, choice: Mapping, decoder: Mapping) -> dict:
    """One experiment's row: sizes, seeds, the chosen seed's test correlation, the chosen cells.

    Per slot (``c0`` strengthens class 0, ``c0_weaken`` weakens it, ...): the chosen ``cell`` and
    its ``learning_rate, feature_factor``, ``value`` (the selection metric: P(class) on the other
    class's rows for a strengthen slot, 1 − P(class) on its own rows for a weaken slot), ``lms``,
    ``fallback``, and ``base_probability`` → ``probability`` (:func:`target_probabilities`).
    """
    classes = list(config["data"]["target_classes"])
    targets = {t["id"]: "/".join(t["targets"]) for t in config["data"]["feature_targets"]}
    chosen = str(choice["seed"])
    row = {
        "experiment": name, "base_model": config["base_model"], "c0": classes[0], "c1": classes[1],
        "c0_targets": targets.get(classes[0], ""), "c1_targets": targets.get(classes[1], ""),
        "training_rows": data["rows"], "convergent_seeds": len(choice["convergent_seeds"]),
        "seeds": len(config["seeds"]), "chosen_seed": choice["seed"], "converged": choice["converged"],
        "test_correlation": choice["scores"][chosen]["test_correlation"], "base_lms": decoder["base"]["lms"],
    }
    for (i, weaken), slot in SLOTS.items():
        entry = decoder.get(rewrite_key(classes[i], weaken))
        for field in ENTRY_FIELDS:
            row[f"{slot}_{field}"] = None if entry is None else entry.get(field)
        base_p, p = (None, None) if entry is None else target_probabilities(entry)
        row[f"{slot}_base_probability"], row[f"{slot}_probability"] = base_p, p
    return row


def _latex(text) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_tabular(align: str, header: Sequence[str], rows: Sequence[Sequence[str]],
                  header_above: Sequence[str] = ()) -> str:
    """A booktabs ``tabular`` (``header``, ``rows`` and the raw lines ``header_above`` already escaped)."""
    lines = [r"\begin{tabular}{" + align + "}", r"\toprule", *header_above, " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(cells) + r" \\" for cells in rows]
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}", ""])


def _number(value, digits: int = 3) -> str:
    return MISSING if value is None else f"{float(value):.{digits}f}"


def _factor(value) -> str:
    return MISSING if value is None else f"${float(value):+g}$"


def class_label(row: Mapping, index: int) -> str:
    """``F (\\textit{she})``: the class id and the target tokens the config gives it."""
    tokens = row[f"c{index}_targets"]
    return _latex(row[f"c{index}"]) + (rf" (\textit{{{_latex(tokens)}}})" if tokens else "")


def experiment_table(row: Mapping) -> str:
    """A ``table`` of one experiment: per target class and direction the chosen cell, P(target)
    and LMS of the base model and of the rewrite."""
    body = []
    for (i, weaken), slot in SLOTS.items():
        cell = row[f"{slot}_cell"]
        mark = FALLBACK_MARK if row[f"{slot}_fallback"] else ""
        lr = MISSING if cell is None else f"{float(row[f'{slot}_learning_rate']):g}{mark}"
        body.append([class_label(row, i) if not weaken else "", "weaken" if weaken else "strengthen",
                     lr, _factor(row[f"{slot}_feature_factor"]),
                     _number(row[f"{slot}_base_probability"]), _number(row[f"{slot}_probability"]),
                     _number(None if cell is None else row["base_lms"]), _number(row[f"{slot}_lms"])])
    above = [r" & & \multicolumn{2}{c}{Chosen cell} & \multicolumn{2}{c}{$P$(target)} & \multicolumn{2}{c}{LMS} \\",
             r"\cmidrule(lr){3-4} \cmidrule(lr){5-6} \cmidrule(lr){7-8}"]
    tabular = latex_tabular("llrrrrrr", ["Target", "Direction", "lr", "ff", "base", "rewritten", "base", "rewritten"],
                            body, above)
    fallback = any(row[f"{slot}_fallback"] for slot in SLOTS.values())
    caption = (f"{_latex(row['experiment'])} ({_latex(row['base_model'])}): decoder rewrites with the GRADIEND "
               f"of seed {row['chosen_seed']} ({row['convergent_seeds']}/{row['seeds']} seeds converged, test "
               f"$r = {float(row['test_correlation']):.3f}$). $P$(target): probability of the target class's "
               "tokens on the other class's rows (strengthen) or on its own rows (weaken). LMS: language "
               "modelling score." + (f" {FALLBACK_MARK}No cell kept the LMS threshold; the smallest learning rate "
                                     "was taken." if fallback else ""))
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}",
                      rf"\label{{tab:gradiend:{row['experiment']}}}", tabular + r"\end{table}", ""])


def latex_tables(rows: Sequence[Mapping]) -> str:
    """One :func:`experiment_table` per row, for ``\\input`` into a paper that loads booktabs."""
    return "\n".join([r"% GRADIEND summary: one table per experiment; needs \usepackage{booktabs}", "",
                      *(experiment_table(row) for row in rows)])


def summary(config: dict, *, experiments: Sequence[str], data_summaries: Sequence[str],
            seed_choices: Sequence[str], decoder_summaries: Sequence[str], csv: str, tex: str) -> None:
    """One table across experiments.

    Config: ``{experiment: cut}`` with ``base_model, data.target_classes, data.feature_targets,
    seeds`` per experiment.
    Reads, per experiment (same order as ``experiments``): ``data_summaries[i]``,
    ``seed_choices[i]``, ``decoder_summaries[i]``.
    Writes ``csv`` (columns of :func:`summary_row`: ``experiment, base_model, c0, c1, c0_targets,
    c1_targets, training_rows, convergent_seeds, seeds, chosen_seed, converged, test_correlation,
    base_lms``, then ``<slot>_{cell, learning_rate, feature_factor, value, lms, fallback,
    base_probability, probability}`` for the slots ``c0, c0_weaken, c1, c1_weaken``) and ``tex``
    (per experiment a booktabs ``table`` of the same rows, :func:`experiment_table`).
    """
    import pandas as pd

    from gradiend.util.io import atomic_path, read_json

    if not len(experiments) == len(data_summaries) == len(seed_choices) == len(decoder_summaries):
        raise ValueError("summary needs one data summary, seed choice and decoder summary per experiment")
    rows = [summary_row(name, config[name], read_json(data), read_json(choice), read_json(decoder))
            for name, data, choice, decoder in zip(experiments, data_summaries, seed_choices, decoder_summaries)]
    with atomic_path(csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(tex) as tmp:
        tmp.write_text(latex_tables(rows), encoding="utf-8")

"""The ``summary`` stage: one table across experiments, as CSV and as a LaTeX ``tabular``."""
from __future__ import annotations

from typing import Mapping, Sequence

from gradiend.cells import rewrite_key
from gradiend.stages.report import fmt

ENTRY_FIELDS = ("learning_rate", "feature_factor", "value", "lms")
# (class index, weaken) -> the column prefix of that rewrite: c0, c0_weaken, c1, c1_weaken
SLOTS = {(i, weaken): rewrite_key(f"c{i}", weaken) for i in (0, 1) for weaken in (False, True)}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def summary_row(name: str, config: Mapping, data: Mapping, choice: Mapping, decoder: Mapping) -> dict:
    """One experiment's row: sizes, seeds, the chosen seed's test correlation, the chosen cells.

    ``<slot>_value`` is the selection metric: P(class) on the other class's rows for a strengthen
    slot, 1 − P(class) on its own rows for a weaken slot.
    """
    classes = list(config["data"]["target_classes"])
    chosen = str(choice["seed"])
    row = {
        "experiment": name, "base_model": config["base_model"], "c0": classes[0], "c1": classes[1],
        "training_rows": data["rows"], "convergent_seeds": len(choice["convergent_seeds"]),
        "seeds": len(config["seeds"]), "chosen_seed": choice["seed"], "converged": choice["converged"],
        "test_correlation": choice["scores"][chosen]["test_correlation"], "base_lms": decoder["base"]["lms"],
    }
    for (i, weaken), slot in SLOTS.items():  # slot `c0` strengthens class 0, `c0_weaken` weakens it, ...
        entry = decoder.get(rewrite_key(classes[i], weaken)) or {}
        for field in ENTRY_FIELDS:
            row[f"{slot}_{field}"] = entry.get(field)
    return row


def _latex(text) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_tabular(align: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A LaTeX ``tabular`` between horizontal rules (``header`` and ``rows`` already escaped)."""
    lines = [r"\begin{tabular}{" + align + "}", r"\hline", " & ".join(header) + r" \\", r"\hline"]
    lines += [" & ".join(cells) + r" \\" for cells in rows]
    return "\n".join([*lines, r"\hline", r"\end{tabular}", ""])


def latex_table(rows: Sequence[Mapping]) -> str:
    """A ``tabular``: per experiment the chosen seed and, per slot, lr / metric / LMS."""
    header = ["Experiment", "Base model", "Classes", "Rows", "Convergent", "Seed", "$r$", "Base LMS"]
    for slot in SLOTS.values():
        header += [f"{_latex(slot)} lr", f"{_latex(slot)} metric", f"{_latex(slot)} LMS"]
    body = []
    for row in rows:
        cells = [_latex(row["experiment"]), _latex(row["base_model"]), _latex(f"{row['c0']} / {row['c1']}"),
                 str(row["training_rows"]), f"{row['convergent_seeds']}/{row['seeds']}", str(row["chosen_seed"]),
                 fmt(row["test_correlation"], 3), fmt(row["base_lms"], 3)]
        for slot in SLOTS.values():
            cells += [fmt(row[f"{slot}_learning_rate"], 3), fmt(row[f"{slot}_value"], 3), fmt(row[f"{slot}_lms"], 3)]
        body.append(cells)
    return latex_tabular("l" * 3 + "r" * (len(header) - 3), header, body)


def summary(config: dict, *, experiments: Sequence[str], data_summaries: Sequence[str],
            seed_choices: Sequence[str], decoder_summaries: Sequence[str], csv: str, tex: str) -> None:
    """One table across experiments.

    Config: ``{experiment: cut}`` with ``base_model, data.target_classes, seeds`` per experiment.
    Reads, per experiment (same order as ``experiments``): ``data_summaries[i]``,
    ``seed_choices[i]``, ``decoder_summaries[i]``.
    Writes ``csv`` (columns of :func:`summary_row`: ``experiment, base_model, c0, c1,
    training_rows, convergent_seeds, seeds, chosen_seed, converged, test_correlation, base_lms``,
    then ``<slot>_{learning_rate, feature_factor, value, lms}`` for the slots ``c0, c0_weaken, c1,
    c1_weaken``) and ``tex`` (a LaTeX ``tabular`` of the same rows).
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
        tmp.write_text(latex_table(rows), encoding="utf-8")

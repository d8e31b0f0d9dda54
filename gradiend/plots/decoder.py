"""How the rewrite moves the model: LMS and class probabilities against the learning rate.

Panels: LMS, then one per dataset (rows of one factual class) with P(class tokens) for every class.
One line per feature factor; the unmodified model sits at the left as "base"; each chosen cell of
the summary is starred on the panel its metric reads.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from gradiend.plots.figures import save_figure, subplots

_LINESTYLES = ["-", "--", "-.", ":"]


def plot_probability_shifts(grid: Mapping | Sequence, summary: Mapping | None = None,
                            output_path: str | Path | None = None, title: str | None = None, dpi: int = 150) -> Any:
    """Plot decoder cells (``{"base": …, key: cell}`` or a list); star the chosen cells of ``summary``."""
    all_cells = list(grid.values()) if isinstance(grid, Mapping) else list(grid)
    base = next((c for c in all_cells if c.get("is_base")), None)
    cells = sorted((c for c in all_cells if not c.get("is_base")),
                   key=lambda c: (c["feature_factor"], c["learning_rate"]))
    if not cells:
        raise ValueError("no decoder cells to plot")
    datasets = sorted({d for c in cells for d in c.get("probs_by_dataset", {})})
    classes = sorted({k for c in cells for probs in c.get("probs_by_dataset", {}).values() for k in probs})
    factors = sorted({float(c["feature_factor"]) for c in cells})
    # where "base" sits on the log axis: a quarter of the smallest positive learning rate
    base_x = min((float(c["learning_rate"]) for c in cells if c["learning_rate"] > 0), default=1.0) / 4
    max_rate = max(float(c["learning_rate"]) for c in cells)
    fig, axes = subplots(output_path, 1, 1 + len(datasets), figsize=(4.2 * (1 + len(datasets)), 3.8),
                         squeeze=False)
    axes = axes[0]
    colours = {cls: f"C{i}" for i, cls in enumerate(classes)}

    def series(ff, read):
        chosen = [c for c in cells if float(c["feature_factor"]) == ff and c["learning_rate"] > 0]
        xs = ([base_x] if base else []) + [c["learning_rate"] for c in chosen]
        ys = ([read(base)] if base else []) + [read(c) for c in chosen]
        return xs, [y if y is not None and math.isfinite(y) else math.nan for y in ys]

    for i, ff in enumerate(factors):
        style = _LINESTYLES[i % len(_LINESTYLES)]
        axes[0].plot(*series(ff, lambda c: c.get("lms")), style, marker="o", ms=3, color="black", label=f"ff={ff:g}")
        for ax, dataset in zip(axes[1:], datasets):
            for cls in classes:
                xs, ys = series(ff, lambda c, d=dataset, k=cls: c.get("probs_by_dataset", {}).get(d, {}).get(k))
                ax.plot(xs, ys, style, marker="o", ms=3, color=colours[cls], label=f"P({cls}) ff={ff:g}")
    if base is not None:
        axes[0].axhline(0.99 * base["lms"], color="0.6", ls=":", lw=0.8, label="0.99 · base LMS")
    for key, entry in (summary or {}).items():
        if not isinstance(entry, Mapping) or "learning_rate" not in entry:
            continue
        target, rate = entry["target_class"], entry["learning_rate"]
        cell = next((c for c in cells if c["learning_rate"] == rate and c["feature_factor"] == entry["feature_factor"]),
                    None)
        for ax, d in zip(axes[1:], datasets):
            if cell is not None and (d != target if entry["strengthen"] else d == target):  # the metric's rows
                value = cell["probs_by_dataset"][d][target]
                ax.plot([rate], [value], marker="*", ms=15, color=colours.get(target, "black"), markeredgecolor="black",
                        zorder=5)
                ax.annotate(key, (rate, value), textcoords="offset points", xytext=(5, 5), fontsize="x-small")
        axes[0].plot([rate], [entry["lms"]], marker="*", ms=12, color="gold",
                     markeredgecolor="black", zorder=5)
    for ax in axes:
        ax.set_xscale("log")
        ticks = [base_x] + [t for t in (1e-3, 1e-2, 1e-1, 1, 10, 100) if base_x < t <= max_rate]
        ax.set_xticks(ticks, ["base"] + [f"{t:g}" for t in ticks[1:]])
        ax.set_xlabel("learning rate")
    axes[0].set_ylabel("LMS")
    axes[0].set_title("language modelling score")
    axes[0].legend(fontsize="x-small")
    for ax, dataset in zip(axes[1:], datasets):
        ax.set_title(f"rows of class {dataset}")
        ax.set_ylabel("P(class tokens)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize="xx-small")
    fig.suptitle(title or "Decoder probability shifts")
    return save_figure(fig, output_path, dpi)

"""How the rewrite moves the model: LMS and class probabilities against the learning rate.

Panels, stacked at column width with a shared learning-rate axis: LMS, then one per dataset (rows
of one factual class) with P(class tokens) for every class. Line style = feature factor; in the
probability panels colour and marker = class, in the LMS panel the marker points the way of the
factor (▼ negative, ▲ positive). The unmodified model sits at the left as "base"; each chosen cell
of the summary is starred on the panel its metric reads, its label kept inside the axes.

A cell whose LMS fell below :data:`COLLAPSE_FRACTION` of the base LMS has collapsed: the rewrite
broke the model, so its probabilities say nothing. Such cells are drawn off-scale: left out of
every panel (so they do not stretch the axes over the useful range) and named, with their LMS, in
an arrow annotation pointing off the LMS panel's right edge.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from gradiend.plots.figures import (COLUMN_WIDTH, LINESTYLES, MARKERS, class_colour, figure_title, save_figure,
                                    styled, subplots)

COLLAPSE_FRACTION = 0.25
FACTOR_MARKERS = ("v", "^")  # the LMS line of a negative / positive feature factor
OFF_SCALE_LABEL = "off-scale, collapsed"


def _finite(value) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def is_collapsed(lms_ratio) -> bool:
    """Whether LMS / base LMS is below ``COLLAPSE_FRACTION`` (a ratio that is no finite number is no
    collapse: there is nothing to compare)."""
    ratio = _finite(lms_ratio)
    return math.isfinite(ratio) and ratio < COLLAPSE_FRACTION


def collapsed_cells(cells: Sequence[Mapping], base: Mapping | None) -> list[Mapping]:
    """The cells that :func:`is_collapsed` against the base LMS (none when every cell is, or the base LMS
    is not a positive number)."""
    base_lms = _finite((base or {}).get("lms"))
    if not base_lms > 0:
        return []
    fallen = [c for c in cells if is_collapsed(_finite(c.get("lms")) / base_lms)]
    return fallen if len(fallen) < len(cells) else []


def _class_order(cells: Sequence[Mapping], base: Mapping | None) -> list[str]:
    """Classes with the largest feature factor (the +1 class) first, as in the other figures."""
    classes = sorted({k for c in cells for probs in c.get("probs_by_dataset", {}).values() for k in probs})
    factors = (base or {}).get("class_feature_factors") or {}
    return sorted(classes, key=lambda cls: (-float(factors.get(cls, -math.inf)), cls))


def _off_scale_note(collapsed: Sequence[Mapping]) -> str:
    lines = []
    for rate in sorted({float(c["learning_rate"]) for c in collapsed}):
        values = sorted({f"{_finite(c['lms']):.3f}" for c in collapsed if float(c["learning_rate"]) == rate})
        lines.append(f"lr {rate:g}: LMS {' / '.join(values)}")
    return "\n".join([f"{OFF_SCALE_LABEL} \u2192", *lines])


def _signed(value: float) -> str:
    return f"{value:+g}".replace("-", "\u2212")


def _label_stars(ax, stars: Sequence[tuple[str, float, float]]) -> None:
    """Label each (text, x, y) star beside it, inside the axes: to the left near the right edge,
    below near the top or when another star sits just above it at the same x (else above)."""
    for text, x, y in stars:
        fx, fy = (ax.transScale + ax.transLimits).transform((x, y))
        crowded_above = any(ox == x and 0 < oy - y < 0.2 for _, ox, oy in stars)
        right, up = fx < 0.75, fy < 0.8 and not crowded_above
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(5 if right else -5, 4 if up else -4),
                    ha="left" if right else "right", va="bottom" if up else "top", zorder=6)


@styled
def plot_probability_shifts(grid: Mapping | Sequence, summary: Mapping | None = None,
                            output_path: str | Path | None = None, title: str | None = None, dpi: int | None = None, *,
                            experiment: str | None = None, seed: int | None = None,
                            lms_ratio: float | None = 0.99) -> Any:
    """Plot decoder cells (``{"base": …, key: cell}`` or a list); star the chosen cells of ``summary``.

    ``lms_ratio`` draws the ``lms_threshold`` policy's line at that fraction of the base LMS (None:
    no line); the title names ``experiment`` and ``seed`` (the seed whose GRADIEND rewrote).
    """
    all_cells = list(grid.values()) if isinstance(grid, Mapping) else list(grid)
    base = next((c for c in all_cells if c.get("is_base")), None)
    cells = sorted((c for c in all_cells if not c.get("is_base")),
                   key=lambda c: (c["feature_factor"], c["learning_rate"]))
    if not cells:
        raise ValueError("no decoder cells to plot")
    collapsed = collapsed_cells(cells, base)
    shown = [c for c in cells if not any(c is d for d in collapsed)]
    classes = _class_order(cells, base)
    datasets = [cls for cls in classes if any(cls in c.get("probs_by_dataset", {}) for c in cells)]
    factors = sorted({float(c["feature_factor"]) for c in cells})
    # where "base" sits on the log axis: a quarter of the smallest positive learning rate
    base_x = min((float(c["learning_rate"]) for c in shown if c["learning_rate"] > 0), default=1.0) / 4
    max_rate = max(float(c["learning_rate"]) for c in shown)
    fig, axes = subplots(output_path, 1 + len(datasets), 1, sharex=True, squeeze=False,
                         figsize=(COLUMN_WIDTH, 1.3 + 1.75 * (1 + len(datasets))))
    axes = axes[:, 0]

    def series(ff, read):
        chosen = [c for c in shown if float(c["feature_factor"]) == ff and c["learning_rate"] > 0]
        xs = ([base_x] if base else []) + [c["learning_rate"] for c in chosen]
        ys = ([read(base)] if base else []) + [read(c) for c in chosen]
        return xs, [_finite(y) for y in ys]

    for j, ff in enumerate(factors):
        linestyle = LINESTYLES[j % len(LINESTYLES)]
        axes[0].plot(*series(ff, lambda c: c.get("lms")), color="black", linestyle=linestyle,
                     marker=FACTOR_MARKERS[ff > 0], label=f"ff = {_signed(ff)}")
        for ax, dataset in zip(axes[1:], datasets):
            for k, cls in enumerate(classes):
                xs, ys = series(ff, lambda c, d=dataset, p=cls: c.get("probs_by_dataset", {}).get(d, {}).get(p))
                ax.plot(xs, ys, color=class_colour(k), linestyle=linestyle, marker=MARKERS[k % len(MARKERS)],
                        label=f"P({cls}), ff = {_signed(ff)}")
    if base is not None and lms_ratio is not None:
        axes[0].axhline(lms_ratio * base["lms"], color="0.5", ls=":", lw=1.0, label=f"{lms_ratio:g} \u00b7 base LMS")
    ax_min, ax_max = base_x / 1.6, max_rate * 1.6
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlim(ax_min, ax_max)
        ticks = [base_x] + [t for t in (1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100) if base_x < t <= max_rate]
        ax.set_xticks(ticks, ["base"] + [f"{t:g}" for t in ticks[1:]])
    for ax in axes[1:]:
        ax.set_ylim(-0.04, 1.04)
    colours = {cls: class_colour(k) for k, cls in enumerate(classes)}
    stars: dict[int, list] = {}  # panel index -> [(label, x, y)]
    for key, entry in (summary or {}).items():
        if not isinstance(entry, Mapping) or "learning_rate" not in entry:
            continue
        target, rate = entry["target_class"], entry["learning_rate"]
        cell = next((c for c in shown if c["learning_rate"] == rate and c["feature_factor"] == entry["feature_factor"]),
                    None)
        if cell is None:  # a collapsed (off-scale) choice is named in the note instead
            continue
        for panel, (ax, d) in enumerate(zip(axes[1:], datasets), start=1):
            if d != target if entry["strengthen"] else d == target:  # the rows the metric reads
                value = cell["probs_by_dataset"][d][target]
                ax.plot([rate], [value], marker="*", ms=11, color=colours.get(target, "black"),
                        markeredgecolor="black", markeredgewidth=0.6, linestyle="none", zorder=5)
                stars.setdefault(panel, []).append((key, rate, value))
        axes[0].plot([rate], [entry["lms"]], marker="*", ms=11, color="gold", markeredgecolor="black",
                     markeredgewidth=0.6, linestyle="none", zorder=5)
    axes[0].plot([], [], marker="*", ms=9, color="gold", markeredgecolor="black", markeredgewidth=0.6,
                 linestyle="none", label="chosen cell")
    for panel, labelled in stars.items():
        _label_stars(axes[panel], labelled)
    if collapsed:  # a band above the LMS curve holds the note, whose arrow points off the right edge
        low, high = axes[0].get_ylim()
        axes[0].set_ylim(low, high + 0.45 * (high - low))
        axes[0].annotate(_off_scale_note(collapsed), xy=(1.0, 0.86), xycoords="axes fraction", xytext=(0.9, 0.86),
                         textcoords="axes fraction", ha="right", va="center",
                         bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7", "alpha": 0.9},
                         arrowprops={"arrowstyle": "-|>", "color": "0.3", "shrinkA": 0, "shrinkB": 0})
    axes[0].set_ylabel("LMS")
    axes[0].set_title("language modelling score")
    axes[0].legend(loc="lower left")
    for ax, dataset in zip(axes[1:], datasets):
        ax.set_title(f"rows of class {dataset}")
        ax.set_ylabel("P(class tokens)")
    axes[-1].set_xlabel("learning rate")
    axes[-1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False)
    fig.suptitle(figure_title(title or "decoder probability shifts", experiment, seed))
    return save_figure(fig, output_path, dpi)

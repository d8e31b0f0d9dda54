"""The rewrite's trade-off: how far it moves the target against how much it damages the model.

One row per chosen rewrite target, two panels: the metric against the KL divergence to the base
model (log axis; the base model, at KL 0, is the dashed line) and against LMS / base LMS. Grid
cells are circles, search trials triangles; cells outside the damage bound are hollow; the bound
is drawn as dotted lines and the chosen point as a star, its label inside the panel. Collapsed
cells (LMS below :data:`~gradiend.plots.decoder.COLLAPSE_FRACTION` of the base LMS) stay off the
LMS axis, which would otherwise squeeze the useful range, and the panel says how many.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from gradiend.plots.decoder import COLLAPSE_FRACTION, is_collapsed
from gradiend.plots.figures import COLUMN_WIDTH, save_figure, styled, subplots

_MARKERS = {"grid": "o", "trial": "^"}


@styled
def plot_tradeoff(panels: Mapping[str, Mapping], output_path: str | Path | None = None, *,
                  lms_ratio: float | None = None, max_kl: float | None = None, title: str | None = None,
                  dpi: int | None = None) -> Any:
    """Draw ``{key: {"points": [{id, kind, kl, lms_ratio, metric, admissible}], "chosen": id,
    "base_metric", "metric_label"}}``; ``lms_ratio`` / ``max_kl``: the bound's lines (None: none)."""
    if not panels:
        raise ValueError("no chosen rewrite to plot the trade-off of")
    fig, axes = subplots(output_path, len(panels), 2, figsize=(2 * COLUMN_WIDTH, 2.8 * len(panels)), squeeze=False)
    for row, (key, panel) in zip(axes, panels.items()):
        kl_axis, lms_axis = row
        shown = [p for p in panel["points"] if not is_collapsed(p["lms_ratio"])]
        for point in shown:
            colour = "C1" if point["kind"] == "trial" else "C0"
            style = dict(marker=_MARKERS[point["kind"]], ms=5, ls="none", color=colour,
                         markerfacecolor=colour if point["admissible"] else "none")
            kl = point["kl"]
            on_log_axis = kl is not None and math.isfinite(kl) and kl > 0
            if on_log_axis:
                kl_axis.plot([kl], [point["metric"]], **style)
            lms_axis.plot([point["lms_ratio"]], [point["metric"]], **style)
            if point["id"] == panel["chosen"]:
                star = dict(marker="*", ms=12, color="gold", markeredgecolor="black", zorder=5, ls="none")
                if on_log_axis:
                    kl_axis.plot([kl], [point["metric"]], **star)
                lms_axis.plot([point["lms_ratio"]], [point["metric"]], **star)
                # to the star's left: chosen cells sit near LMS / base LMS = 1, the panel's right edge
                lms_axis.annotate(point["id"], (point["lms_ratio"], point["metric"]), textcoords="offset points",
                                  xytext=(-8, -4), ha="right", va="top")
        collapsed = len(panel["points"]) - len(shown)
        if collapsed:
            lms_axis.text(0.02, 0.02, f"{collapsed} collapsed cell(s) off-scale\n(LMS < {COLLAPSE_FRACTION:g} · base)",
                          transform=lms_axis.transAxes, va="bottom")
        for ax in row:
            ax.axhline(panel["base_metric"], color="0.5", ls="--", lw=0.8, label="base model")
            ax.set_ylabel(panel["metric_label"])
            ax.set_title(f"`{key}`")
        kl_axis.set_xscale("log")
        kl_axis.set_xlabel("KL(base ‖ rewritten) on neutral text (nats)")
        lms_axis.set_xlabel("LMS / base LMS")
        if max_kl is not None:
            kl_axis.axvline(max_kl, color="C3", ls=":", lw=1, label=f"KL bound {max_kl:g}")
        if lms_ratio is not None:
            lms_axis.axvline(lms_ratio, color="C3", ls=":", lw=1, label=f"LMS bound {lms_ratio:g}")
        for kind, colour in (("grid", "C0"), ("trial", "C1")):
            lms_axis.plot([], [], marker=_MARKERS[kind], ls="none", color=colour, label=f"{kind} cell")
        lms_axis.legend()
    fig.suptitle(title or "Target shift against damage")
    return save_figure(fig, output_path, dpi)

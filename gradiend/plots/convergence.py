"""How a training run got where it ended: mean encoded value per class and correlation per step."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from gradiend.plots.figures import COLUMN_WIDTH, class_colour, figure_title, save_figure, series_style, styled, subplots
from gradiend.util.io import read_json

NON_CONVERGED_MARK = "\u2020"  # dagger after the title of a run that did not converge
BEST_STEP_STYLE = {"color": "#CC3311", "linestyle": "--", "linewidth": 1.0}
THRESHOLD_STYLE = {"color": "0.45", "linestyle": ":", "linewidth": 1.0}
FLIP_STYLE = {"color": "#882255", "linestyle": "-.", "linewidth": 1.0}


def _load(training: Mapping | str | Path) -> Mapping:
    if isinstance(training, Mapping):
        return training
    path = Path(training)
    if path.is_dir():
        path = path / "training.json"
    if not path.is_file():
        raise FileNotFoundError(f"training statistics not found: {path}")
    return read_json(path)


@styled
def plot_training_convergence(training: Mapping | str | Path, output_path: str | Path | None = None,
                              title: str | None = None, dpi: int | None = None, *, experiment: str | None = None,
                              seed: int | None = None) -> Any:
    """Plot a run's ``training.json`` (dict, file or checkpoint folder).

    Top panel: mean encoded value per class; bottom: correlation with the label. Every marker line
    is in the legend: the best step (dashed), the ±|r| convergence threshold (dotted), steps after
    which the GRADIEND's sign was flipped to put the first class at +1 (dash-dotted). A run that
    did not converge has a dagger after its title; the title names ``experiment`` and ``seed``.
    Saves to ``output_path`` when given; returns the figure.
    """
    stats = _load(training)
    history = stats.get("history") or []
    if not history:
        raise ValueError("training statistics hold no evaluations to plot")
    steps = [h["step"] for h in history]
    classes = list(stats.get("target_classes") or history[0]["mean_by_class"])
    info = stats.get("convergence_info") or {}
    best_step = stats.get("best_step")

    fig, (ax_mean, ax_corr) = subplots(output_path, 2, 1, sharex=True, figsize=(COLUMN_WIDTH, 4.4))
    for i, cls in enumerate(classes):
        values = [h["mean_by_class"].get(cls) for h in history]
        ax_mean.plot(steps, [float("nan") if v is None else v for v in values], color=class_colour(i),
                     label=str(cls), **series_style(i))
    ax_mean.axhline(0.0, color="0.8", lw=0.6)
    ax_mean.set_ylim(-1.1, 1.1)
    ax_mean.set_ylabel("mean encoded value")
    ax_mean.legend(title="class", loc="center right")
    correlations = [float("nan") if h["correlation"] is None else h["correlation"] for h in history]
    ax_corr.plot(steps, correlations, color="black", label="correlation", **series_style(0))
    threshold = info.get("score_threshold")
    if threshold is not None:
        for sign in (1, -1):
            ax_corr.axhline(sign * threshold, label=f"|r| = {threshold:g} (convergence)" if sign > 0 else None,
                            **THRESHOLD_STYLE)
    flips = [h["step"] for h in history if h.get("normalised")]
    for ax in (ax_mean, ax_corr):
        if best_step is not None:
            ax.axvline(best_step, label="best step" if ax is ax_corr else None, **BEST_STEP_STYLE)
        for i, step in enumerate(flips):
            ax.axvline(step, label="sign flipped" if ax is ax_corr and i == 0 else None, **FLIP_STYLE)
    ax_corr.set_ylim(-1.1, 1.1)
    ax_corr.set_ylabel("correlation with label")
    ax_corr.set_xlabel("step")
    ax_corr.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False,
                   columnspacing=1.0)
    best = next((h for h in history if h["step"] == best_step), None)
    if best is not None and best["correlation"] is not None:
        ax_corr.set_title(f"best: step {best_step}, r = {best['correlation']:.3f}", loc="right",
                          color=BEST_STEP_STYLE["color"])
    heading = figure_title(title or "training convergence", experiment, seed)
    fig.suptitle(heading if info.get("converged") else f"{heading} {NON_CONVERGED_MARK} (not converged)")
    return save_figure(fig, output_path, dpi)

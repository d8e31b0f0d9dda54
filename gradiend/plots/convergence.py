"""How a training run got where it ended: mean encoded value per class and correlation per step."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from gradiend.plots.figures import save_figure, subplots
from gradiend.util.io import read_json

NON_CONVERGED_MARK = "\u2020"  # dagger after the title of a run that did not converge


def _load(training: Mapping | str | Path) -> Mapping:
    if isinstance(training, Mapping):
        return training
    path = Path(training)
    if path.is_dir():
        path = path / "training.json"
    if not path.is_file():
        raise FileNotFoundError(f"training statistics not found: {path}")
    return read_json(path)


def plot_training_convergence(training: Mapping | str | Path, output_path: str | Path | None = None,
                              title: str | None = None, dpi: int = 150) -> Any:
    """Plot a run's ``training.json`` (dict, file or checkpoint folder).

    Top panel: mean encoded value per class; bottom: correlation with the label. The best step is
    a dashed line; steps where the encoding was sign-normalised are dotted; a run that did not
    converge has a dagger after its title. Saves to ``output_path`` when given; returns the figure.
    """
    stats = _load(training)
    history = stats.get("history") or []
    if not history:
        raise ValueError("training statistics hold no evaluations to plot")
    steps = [h["step"] for h in history]
    classes = list(stats.get("target_classes") or history[0]["mean_by_class"])
    converged = bool((stats.get("convergence_info") or {}).get("converged"))
    best_step = stats.get("best_step")

    fig, (ax_mean, ax_corr) = subplots(output_path, 2, 1, sharex=True, figsize=(7, 5.5))
    for cls in classes:
        values = [h["mean_by_class"].get(cls) for h in history]
        ax_mean.plot(steps, [float("nan") if v is None else v for v in values], marker="o", ms=3, label=str(cls))
    ax_mean.axhline(0.0, color="0.6", lw=0.8)
    ax_mean.set_ylabel("mean encoded value")
    ax_mean.legend(title="class", fontsize="small")
    correlations = [float("nan") if h["correlation"] is None else h["correlation"] for h in history]
    ax_corr.plot(steps, correlations, marker="o", ms=3, color="black", label="correlation")
    threshold = (stats.get("convergence_info") or {}).get("score_threshold")
    if threshold is not None:
        for sign in (1, -1):
            ax_corr.axhline(sign * threshold, color="0.7", lw=0.8, ls=":")
    ax_corr.set_ylim(-1.05, 1.05)
    ax_corr.set_ylabel("correlation with label")
    ax_corr.set_xlabel("step")
    for ax in (ax_mean, ax_corr):
        if best_step is not None:
            ax.axvline(best_step, color="tab:red", ls="--", lw=1.0)
        for h in history:
            if h.get("normalised"):
                ax.axvline(h["step"], color="tab:purple", ls=":", lw=0.8)
    if best_step is not None:
        best = next((h for h in history if h["step"] == best_step), None)
        if best is not None and best["correlation"] is not None:
            ax_corr.annotate(f"best: step {best_step}\nr = {best['correlation']:.3f}", (best_step, best["correlation"]),
                             textcoords="offset points", xytext=(6, -24), fontsize="small", color="tab:red")
    heading = title or "Training convergence"
    fig.suptitle(heading if converged else f"{heading} {NON_CONVERGED_MARK} (not converged)")
    return save_figure(fig, output_path, dpi)

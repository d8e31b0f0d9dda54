"""Heat maps of feature comparisons: top-k overlap and cross-encoding."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradiend.plots.figures import save_figure, styled, subplots


def _heatmap(matrix: pd.DataFrame, title: str, label: str, output_path, vmin, vmax, cmap: str, digits: int = 2):
    fig, ax = subplots(output_path, figsize=(1.5 + 1.1 * matrix.shape[1], 1.2 + 0.6 * matrix.shape[0]))
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index])
    for (i, j), value in pd.DataFrame(matrix.to_numpy(dtype=float)).stack().items():
        ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title)
    return save_figure(fig, output_path)


@styled
def plot_topk_overlap(frame: pd.DataFrame, output_path: str | Path | None = None, title: str = "top-k overlap"):
    """Pairwise overlap fraction (rows and columns in the order of ``frame``)."""
    order = list(dict.fromkeys(frame["experiment_a"]))
    matrix = frame.pivot(index="experiment_a", columns="experiment_b", values="overlap").loc[order, order]
    return _heatmap(matrix, title, "shared / k", output_path, 0.0, 1.0, "viridis")


@styled
def plot_cross_encoding(frame: pd.DataFrame, output_path: str | Path | None = None, title: str = "cross-encoding"):
    """Mean encoded value: one row per encoder, one column per (data experiment, class)."""
    frame = frame.assign(column=frame["data_experiment"] + ": " + frame["factual_class"])
    rows = list(dict.fromkeys(frame["encoder_experiment"]))
    columns = list(dict.fromkeys(frame["column"]))
    matrix = frame.pivot(index="encoder_experiment", columns="column", values="mean_encoded").loc[rows, columns]
    return _heatmap(matrix, title, "mean encoded value", output_path, -1.0, 1.0, "coolwarm")

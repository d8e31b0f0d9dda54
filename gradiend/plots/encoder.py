"""Where the encoder puts each kind of example: one violin per target class and neutral variant."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from gradiend.data.tables import ENCODED_COLUMNS, NEUTRAL_DATASET, NEUTRAL_TRAINING_MASKED, TRAINING_TYPE
from gradiend.plots.figures import COLUMN_WIDTH, NEUTRAL_GREY, class_colour, figure_title, save_figure, styled, subplots
from gradiend.util.io import read_parquet

NEUTRAL_LABELS = {NEUTRAL_TRAINING_MASKED: "neutral\n(templates)", NEUTRAL_DATASET: "neutral\n(dataset)"}
VIOLIN_LINES = ("cmeans", "cmins", "cmaxes", "cbars")


class Group(NamedTuple):
    label: str
    values: list[float]
    colour: str


def _groups(encoded: pd.DataFrame) -> list[Group]:
    """Training rows by encoded class (+1 class first, in the class colours), then each neutral
    variant present (grey, whatever the classes look like)."""
    groups = []
    training = encoded[encoded["type"] == TRAINING_TYPE]
    order = training.groupby("source_id")["label"].mean().sort_values(ascending=False).index
    for i, source_id in enumerate(order):
        rows = training[training["source_id"] == source_id]
        groups.append(Group(f"{source_id}\n({int(rows['label'].iloc[0]):+d})", rows["encoded"].astype(float).tolist(),
                            class_colour(i)))
    for kind, name in NEUTRAL_LABELS.items():
        values = encoded.loc[encoded["type"] == kind, "encoded"].astype(float).tolist()
        if values:
            groups.append(Group(name, values, NEUTRAL_GREY))
    return groups


@styled
def plot_encoder_distributions(encoded: pd.DataFrame | str | Path, output_path: str | Path | None = None,
                               title: str | None = None, correlation: float | None = None, dpi: int | None = None, *,
                               experiment: str | None = None, seed: int | None = None) -> Any:
    """Violin plot of encoded values (table or ``encoded.parquet``); saves to ``output_path`` if given.

    Target classes should sit near ±1 (tick labels give the class and its label) and neutral rows
    near 0; dotted lines mark the ±0.5 boundaries of the ternary accuracy. Each violin and its
    mean/extrema lines take the group's colour, so a class whose values all coincide (no violin)
    leaves the neutral ones grey. The title names ``experiment`` and ``seed``.
    """
    if not isinstance(encoded, pd.DataFrame):
        encoded = read_parquet(encoded, required_columns=ENCODED_COLUMNS)
    groups = _groups(encoded)
    if not groups:
        raise ValueError("the encoded table has no rows to plot")
    fig, ax = subplots(output_path, figsize=(COLUMN_WIDTH, 2.9))
    for position, group in enumerate(groups, start=1):
        if len(set(group.values)) > 1:  # a kernel density needs spread; single values are drawn as points
            parts = ax.violinplot([group.values], positions=[position], showmeans=True, showextrema=True)
            for body in parts["bodies"]:
                body.set_facecolor(group.colour)
                body.set_edgecolor(group.colour)
                body.set_alpha(0.5)
            for name in VIOLIN_LINES:
                parts[name].set_color(group.colour)
        ax.scatter([position] * len(group.values), group.values, s=5, color=group.colour, alpha=0.6, zorder=3)
        ax.annotate(f"n={len(group.values)}", (position, -1.16), ha="center", color="0.3")
    for level in (-0.5, 0.5):
        ax.axhline(level, color="0.6", lw=0.8, ls=":")
    ax.axhline(0.0, color="0.8", lw=0.6)
    ax.set_xticks(range(1, len(groups) + 1), [group.label for group in groups])
    ax.set_xlim(0.5, len(groups) + 0.5)
    ax.set_ylim(-1.25, 1.1)
    ax.set_ylabel("encoded value")
    fig.suptitle(figure_title(title or "encoded values", experiment, seed))
    if correlation is not None:
        ax.set_title(f"test correlation r = {correlation:.3f}")
    return save_figure(fig, output_path, dpi)

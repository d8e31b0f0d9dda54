"""Where the encoder puts each kind of example: one violin per target class and neutral variant."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gradiend.data.tables import ENCODED_COLUMNS, NEUTRAL_DATASET, NEUTRAL_TRAINING_MASKED, TRAINING_TYPE
from gradiend.plots.figures import save_figure, subplots
from gradiend.util.io import read_parquet

NEUTRAL_LABELS = {NEUTRAL_TRAINING_MASKED: "neutral\n(test templates)", NEUTRAL_DATASET: "neutral\n(dataset)"}


def _groups(encoded: pd.DataFrame) -> list[tuple[str, list[float]]]:
    """Training rows by encoded class (+1 class first), then each neutral variant present."""
    groups = []
    training = encoded[encoded["type"] == TRAINING_TYPE]
    order = training.groupby("source_id")["label"].mean().sort_values(ascending=False).index
    for source_id in order:
        rows = training[training["source_id"] == source_id]
        groups.append((f"{source_id}\n(label {int(rows['label'].iloc[0]):+d})", rows["encoded"].astype(float).tolist()))
    for kind, name in NEUTRAL_LABELS.items():
        values = encoded.loc[encoded["type"] == kind, "encoded"].astype(float).tolist()
        if values:
            groups.append((name, values))
    return groups


def plot_encoder_distributions(encoded: pd.DataFrame | str | Path, output_path: str | Path | None = None,
                               title: str | None = None, correlation: float | None = None, dpi: int = 150) -> Any:
    """Violin plot of encoded values (table or ``encoded.parquet``); saves to ``output_path`` if given.

    Target classes should sit near ±1 and neutral rows near 0; dotted lines mark the ±0.5
    boundaries of the ternary accuracy.
    """
    if not isinstance(encoded, pd.DataFrame):
        encoded = read_parquet(encoded, required_columns=ENCODED_COLUMNS)
    groups = _groups(encoded)
    if not groups:
        raise ValueError("the encoded table has no rows to plot")
    fig, ax = subplots(output_path, figsize=(1.6 * len(groups) + 2, 4.2))
    positions = list(range(1, len(groups) + 1))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for position, (_, values), colour in zip(positions, groups, colours * len(groups)):
        if len(set(values)) > 1:  # a kernel density needs spread; single values are drawn as points
            parts = ax.violinplot([values], positions=[position], showmeans=True, showextrema=True)
            for body in parts["bodies"]:
                body.set_facecolor(colour)
                body.set_alpha(0.55)
        ax.scatter([position] * len(values), values, s=6, color=colour, alpha=0.6, zorder=3)
        ax.annotate(f"n={len(values)}", (position, -1.12), ha="center", fontsize="x-small", color="0.35")
    for level in (-0.5, 0.5):
        ax.axhline(level, color="0.6", lw=0.8, ls=":")
    ax.axhline(0.0, color="0.75", lw=0.8)
    ax.set_xticks(positions, [name for name, _ in groups], fontsize="small")
    ax.set_ylim(-1.2, 1.1)
    ax.set_ylabel("encoded value")
    heading = title or "Encoder distributions"
    if correlation is not None:
        heading += f" (r = {correlation:.3f})"
    ax.set_title(heading)
    return save_figure(fig, output_path, dpi)

"""Encoder-distribution and probability-shift figures are written and mark what they should."""
import pandas as pd

from gradiend.cells import cell_name
from gradiend.evaluation.selection import summarize_cells
from gradiend.plots.decoder import plot_probability_shifts
from gradiend.plots.encoder import plot_encoder_distributions


def test_encoder_distributions_png(tmp_path):
    frame = pd.DataFrame({
        "type": ["training"] * 4 + ["neutral_dataset"],
        "label": [1, 1, -1, -1, 0],
        "source_id": ["she", "she", "he", "he", "neutral"],
        "encoded": [0.9, 0.8, -0.7, -0.7, 0.05],
    })
    out = tmp_path / "distributions.png"
    fig = plot_encoder_distributions(frame, out, correlation=0.97)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0].startswith("she") and labels[1].startswith("he") and "neutral" in labels[2]
    assert "r = 0.970" in fig.axes[0].get_title()


def test_probability_shifts_stars_chosen_cell(tmp_path):
    def cell(lr, ff, lms, p):
        return {"id": cell_name(lr, ff), "learning_rate": lr, "feature_factor": ff, "lms": lms,
                "probs_by_dataset": {"he": {"she": p, "he": 1 - p}, "she": {"she": 1 - p / 2, "he": p / 2}}}

    grid = {"base": {"is_base": True, "learning_rate": 0.0, "feature_factor": 0.0, "lms": 0.5,
                     "probs_by_dataset": {"he": {"she": 0.1, "he": 0.9}, "she": {"she": 0.8, "he": 0.2}}}}
    for lr, lms, p in ((0.01, 0.5, 0.2), (0.1, 0.499, 0.5), (1.0, 0.2, 0.9)):
        c = cell(lr, 1.0, lms, p)
        grid[c["id"]] = c
    summary = summarize_cells(grid, grid["base"], {"she": 1.0, "he": -1.0}, ["she"], ["strengthen"])
    out = tmp_path / "shifts.png"
    fig = plot_probability_shifts(grid, summary, out)
    assert out.stat().st_size > 1000
    he_panel = fig.axes[1]
    assert he_panel.get_title() == "rows of class he"
    stars = [line for line in he_panel.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [0.1] and list(stars[0].get_ydata()) == [0.5]
    assert fig.axes[-1].get_xticklabels()[0].get_text() == "base"  # the shared learning-rate axis

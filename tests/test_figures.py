"""The figures read at column width and in grey print: checked on the Figure objects, not by eye.

Each plot function returns its matplotlib Figure; the tests read its lines, legends, texts,
limits and violin colours.
"""
import math

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.text import Text

from gradiend.cells import cell_name
from gradiend.plots.convergence import plot_training_convergence
from gradiend.plots.decoder import plot_probability_shifts
from gradiend.plots.encoder import plot_encoder_distributions
from gradiend.plots.figures import COLUMN_WIDTH, NEUTRAL_GREY, PRINT_DPI

matplotlib.use("Agg")

CLASSES = {"she": 1.0, "he": -1.0}
BASE_LMS = 0.5
# (learning rate, LMS of both factors, P(she) on the "he" rows for ff=+1): lr=100 collapses the model
GRID = [(0.01, 0.5, 0.48), (0.1, 0.495, 0.7), (1.0, 0.42, 0.99), (100.0, 0.0, 1.0)]


def _cell(lr, ff, lms, p):
    moved = p if ff > 0 else 1 - p  # ff=+1 moves towards "she", ff=-1 towards "he"
    return {"id": cell_name(lr, ff), "learning_rate": lr, "feature_factor": ff, "lms": lms,
            "probs_by_dataset": {"he": {"she": moved, "he": 1 - moved}, "she": {"she": 0.5 + moved / 2,
                                                                            "he": 0.5 - moved / 2}}}


def decoder_grid():
    grid = {"base": {"is_base": True, "learning_rate": 0.0, "feature_factor": 0.0, "lms": BASE_LMS,
                     "class_feature_factors": dict(CLASSES),
                     "probs_by_dataset": {"he": {"she": 0.1, "he": 0.9}, "she": {"she": 0.8, "he": 0.2}}}}
    for lr, lms, p in GRID:
        for ff in (1.0, -1.0):
            cell = _cell(lr, ff, lms, p)
            grid[cell["id"]] = cell
    return grid


# the chosen cell sits at the top right of the "he" panel (largest shown lr, P = 0.99)
CHOSEN = {"she": {"target_class": "she", "learning_rate": 1.0, "feature_factor": 1.0, "strengthen": True,
                  "lms": 0.42, "value": 0.99}}


def convergence_stats():
    history = [{"step": s, "correlation": c, "mean_by_class": {"she": m, "he": -m}, "normalised": s == 20}
               for s, c, m in [(0, 0.05, 0.0), (10, 0.4, 0.3), (20, 0.8, 0.7), (30, 0.75, 0.6)]]
    return {"target_classes": ["she", "he"], "history": history, "best_step": 20,
            "convergence_info": {"converged": True, "score_threshold": 0.5}}


def encoded_frame():
    """Saturated classes (every value ±1: no violin) and spread neutral rows."""
    neutral = [-0.3, -0.1, 0.0, 0.05, 0.2, 0.4]
    return pd.DataFrame({
        "type": ["training"] * 6 + ["neutral_training_masked"] * 6 + ["neutral_dataset"] * 6,
        "label": [1, 1, 1, -1, -1, -1] + [0] * 12,
        "source_id": ["she"] * 3 + ["he"] * 3 + ["neutral"] * 12,
        "encoded": [1.0] * 3 + [-1.0] * 3 + neutral + [v / 2 for v in neutral],
    })


def all_figures(tmp_path):
    return {
        "decoder": plot_probability_shifts(decoder_grid(), CHOSEN, tmp_path / "shifts.png"),
        "convergence": plot_training_convergence(convergence_stats(), tmp_path / "convergence.png"),
        "encoder": plot_encoder_distributions(encoded_frame(), tmp_path / "distributions.png", correlation=0.9),
    }


def series(ax):
    """The labelled lines with more than one point: what a reader must tell apart."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_") and len(line.get_xdata()) > 1]


def test_series_differ_in_line_style_and_marker_in_every_panel(tmp_path):
    figures = all_figures(tmp_path)
    for name in ("decoder", "convergence"):
        for ax in figures[name].axes:
            styles = [(line.get_linestyle(), line.get_marker()) for line in series(ax)]
            assert len(styles) >= 2 and len(set(styles)) == len(styles), (name, ax.get_title(), styles)
    he_panel = figures["decoder"].axes[2]  # classes +1 first: LMS, rows of "she", rows of "he"
    assert he_panel.get_title() == "rows of class he"
    assert {line.get_label() for line in series(he_panel)} == {
        "P(she), ff = \u22121", "P(she), ff = +1", "P(he), ff = \u22121", "P(he), ff = +1"}


def test_legends_show_dashes_and_every_text_is_readable_at_column_width(tmp_path):
    for name, fig in all_figures(tmp_path).items():
        assert fig.get_size_inches()[0] <= 3.5, name
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends or name == "encoder"
        assert all(legend.handlelength >= 3 for legend in legends), name
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        small = sorted({(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 8})
        assert texts and small == [], (name, small)


def test_titles_name_experiment_and_seed(tmp_path):
    figures = [
        plot_probability_shifts(decoder_grid(), CHOSEN, tmp_path / "a.png", experiment="gender_en", seed=3),
        plot_training_convergence(convergence_stats(), tmp_path / "b.png", experiment="gender_en", seed=3),
        plot_encoder_distributions(encoded_frame(), tmp_path / "c.png", experiment="gender_en", seed=3),
    ]
    for fig in figures:
        assert fig._suptitle.get_text().startswith("gender_en, seed 3: ")


def test_collapsed_cell_is_off_scale_and_named(tmp_path):
    fig = plot_probability_shifts(decoder_grid(), CHOSEN, tmp_path / "shifts.png")
    lms_panel = fig.axes[0]
    low, high = lms_panel.get_ylim()
    assert 0.0 < low < 0.42 and high > BASE_LMS  # the useful LMS range, not the collapse at 0
    for ax in fig.axes:
        assert ax.get_xlim()[1] < 100.0  # lr=100 does not stretch the learning-rate axis
        assert all(100.0 not in line.get_xdata() for line in ax.get_lines())
    notes = [a for a in lms_panel.texts if a.arrow_patch is not None]
    assert [a.get_text() for a in notes] == ["off-scale, collapsed \u2192\nlr 100: LMS 0.000"]
    assert notes[0].xy == (1.0, 0.86) and notes[0].xycoords == "axes fraction"  # points off the right edge


def test_star_labels_stay_inside_the_axes(tmp_path):
    fig = plot_probability_shifts(decoder_grid(), CHOSEN, tmp_path / "shifts.png")
    he_panel = next(ax for ax in fig.axes if ax.get_title() == "rows of class he")
    stars = [line for line in he_panel.get_lines() if line.get_marker() == "*"]
    assert [(list(s.get_xdata()), list(s.get_ydata())) for s in stars] == [([1.0], [0.99])]
    canvas = FigureCanvasAgg(fig)  # saving closed the figure's own canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    box = he_panel.get_window_extent(renderer)
    labels = [t for t in he_panel.texts if t.get_text() == "she"]
    assert len(labels) == 1
    extent = labels[0].get_window_extent(renderer)
    assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1


def test_labels_of_stars_at_one_cell_do_not_overlap(tmp_path):
    """P(she) = 0.48 and P(he) = 0.52 on the "he" rows at lr=0.01: the lower star's label goes below."""
    chosen = {"she": {**CHOSEN["she"], "learning_rate": 0.01, "lms": 0.5},
              "he_weaken": {"target_class": "he", "learning_rate": 0.01, "feature_factor": 1.0, "strengthen": False,
                            "lms": 0.5, "value": 0.48}}
    fig = plot_probability_shifts(decoder_grid(), chosen, tmp_path / "shifts.png")
    he_panel = next(ax for ax in fig.axes if ax.get_title() == "rows of class he")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    extents = {t.get_text(): t.get_window_extent(canvas.get_renderer()) for t in he_panel.texts}
    assert set(extents) == {"she", "he_weaken"}
    assert extents["she"].y1 <= extents["he_weaken"].y0  # "she" (0.48) below, "he_weaken" (0.52) above


def test_neutral_violins_are_grey_and_classes_keep_their_colours(tmp_path):
    figures = all_figures(tmp_path)
    ax = figures["encoder"].axes[0]
    grey = to_rgba(NEUTRAL_GREY)
    bodies = [c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(bodies) == 2  # the saturated classes have no violin; both neutral variants have one
    for body in bodies:
        assert tuple(body.get_facecolor()[0][:3]) == grey[:3] and body.get_facecolor()[0][3] == 0.5
    lines = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert len(lines) == 8 and all(tuple(c.get_color()[0]) == grey for c in lines)  # means and extrema
    points = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
    colour_by_group = {round(float(c.get_offsets()[0][0])): tuple(c.get_facecolor()[0][:3]) for c in points}
    convergence = {line.get_label(): to_rgba(line.get_color())[:3] for line in series(figures["convergence"].axes[0])}
    decoder = {line.get_label(): to_rgba(line.get_color())[:3] for line in series(figures["decoder"].axes[1])}
    # one colour per class in every figure: "she" (the +1 class) at position 1, "he" at 2, neutral grey
    assert colour_by_group[1] == convergence["she"] == decoder["P(she), ff = +1"]
    assert colour_by_group[2] == convergence["he"] == decoder["P(he), ff = +1"]
    assert colour_by_group[1] != colour_by_group[2] and colour_by_group[3] == colour_by_group[4] == grey[:3]


def test_every_marker_line_of_the_convergence_plot_is_in_its_legend(tmp_path):
    fig = plot_training_convergence(convergence_stats(), tmp_path / "convergence.png")
    ax_corr = fig.axes[1]
    legend = [t.get_text() for t in ax_corr.get_legend().get_texts()]
    assert legend == ["correlation", "|r| = 0.5 (convergence)", "best step", "sign flipped"]
    by_label = {line.get_label(): line for line in ax_corr.get_lines()}
    assert list(by_label["|r| = 0.5 (convergence)"].get_ydata()) == [0.5, 0.5]
    assert list(by_label["sign flipped"].get_xdata()) == [20, 20]  # the step flagged "normalised"
    assert list(by_label["best step"].get_xdata()) == [20, 20]
    unlabelled = [line for line in ax_corr.get_lines() if line.get_label().startswith("_")]
    assert [list(line.get_ydata()) for line in unlabelled] == [[-0.5, -0.5]]  # the threshold's lower twin


def test_no_collapse_without_a_base_keeps_every_cell(tmp_path):
    grid = {k: v for k, v in decoder_grid().items() if k != "base"}
    fig = plot_probability_shifts(grid, None, tmp_path / "shifts.png")
    assert fig.axes[0].get_xlim()[1] > 100.0 and not [a for a in fig.axes[0].texts if a.arrow_patch is not None]


def test_tradeoff_keeps_collapsed_cells_off_the_lms_axis_and_the_star_label_inside(tmp_path):
    from gradiend.plots.tradeoff import plot_tradeoff

    points = [{"id": f"lr~{lr}_ff~1", "kind": "grid", "kl": kl, "lms_ratio": ratio, "metric": metric,
               "admissible": ratio >= 0.99}
              for lr, kl, ratio, metric in ((0.01, 0.01, 1.0, 0.2), (0.03, 0.05, 0.995, 0.5), (0.1, 0.5, 0.9, 0.9),
                                            (100, 500.0, 0.0, 1.0))]
    fig = plot_tradeoff({"F": {"points": points, "chosen": "lr~0.03_ff~1", "base_metric": 0.02,
                               "metric_label": "P(F) (test rows)"}}, tmp_path / "tradeoff.png", lms_ratio=0.99)
    lms_axis = fig.axes[1]
    plotted = [x for line in lms_axis.get_lines() for x in line.get_xdata() if line.get_marker() in ("o", "*")]
    assert sorted(set(plotted)) == [0.9, 0.995, 1.0]  # the collapsed lr=100 cell (LMS 0) is not drawn
    assert any("1 collapsed cell(s) off-scale" in t.get_text() for t in lms_axis.texts)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = lms_axis.get_window_extent(renderer)
    label = next(t for t in lms_axis.texts if t.get_text() == "lr~0.03_ff~1")
    extent = label.get_window_extent(renderer)
    assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1
    from PIL import Image

    with Image.open(tmp_path / "tradeoff.png") as png:  # print resolution, as every figure
        assert png.size[0] == round(2 * COLUMN_WIDTH * PRINT_DPI)


def test_tradeoff_keeps_cells_whose_lms_ratio_is_unknown(tmp_path):
    """A base LMS of 0 gives NaN ratios: no collapse can be told, so the cells stay on the KL axis."""
    from gradiend.plots.tradeoff import plot_tradeoff

    points = [{"id": f"lr~{lr}_ff~1", "kind": "grid", "kl": kl, "lms_ratio": math.nan, "metric": metric,
               "admissible": False} for lr, kl, metric in ((0.01, 0.01, 0.2), (0.1, 0.5, 0.9))]
    fig = plot_tradeoff({"F": {"points": points, "chosen": None, "base_metric": 0.02, "metric_label": "P(F)"}})
    drawn = [x for line in fig.axes[0].get_lines() for x in line.get_xdata() if line.get_marker() == "o"]
    assert drawn == [0.01, 0.5] and not fig.axes[1].texts  # no "collapsed" note either

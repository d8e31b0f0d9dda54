"""The shared look of every figure and how it is saved.

Figures are sized for one column of a two-column paper (:data:`COLUMN_WIDTH` inches), so the
:data:`STYLE` font sizes (never below :data:`MIN_FONT_SIZE` points) are the printed sizes. Series
differ by line style *and* marker, so they stay apart in grey print; classes keep one colour
(:data:`CLASS_COLOURS`, colour-blind safe) across figures, +1 class first; neutral rows are grey.
Files are written off-screen and atomically, in the format of their suffix.
"""
from __future__ import annotations

import functools
from pathlib import Path

from gradiend.util.io import PathLike, atomic_path

COLUMN_WIDTH = 3.4  # inches
PRINT_DPI = 300  # raster figures (PNG) at print resolution
MIN_FONT_SIZE = 8.0  # points, at the saved size
LEGEND_HANDLE_LENGTH = 3.0  # font sizes: long enough to show a dash pattern
STYLE = {
    "font.size": MIN_FONT_SIZE, "axes.titlesize": 9.0, "axes.labelsize": MIN_FONT_SIZE,
    "xtick.labelsize": MIN_FONT_SIZE, "ytick.labelsize": MIN_FONT_SIZE, "legend.fontsize": MIN_FONT_SIZE,
    "legend.title_fontsize": MIN_FONT_SIZE, "figure.titlesize": 9.0, "legend.handlelength": LEGEND_HANDLE_LENGTH,
    "lines.linewidth": 1.2, "lines.markersize": 4.0, "axes.linewidth": 0.8,
}
# Okabe & Ito: blue, vermilion, bluish green, reddish purple, orange, sky blue
CLASS_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
NEUTRAL_GREY = "#999999"
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "D", "^", "v", "P")


def class_colour(index: int) -> str:
    """Colour of the ``index``-th class (0 = the +1 class)."""
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def series_style(index: int) -> dict:
    """Line style and marker of the ``index``-th series of a panel: distinct pairs for 12 series."""
    return {"linestyle": LINESTYLES[index % len(LINESTYLES)], "marker": MARKERS[index % len(MARKERS)]}


def figure_title(what: str, experiment: str | None = None, seed: int | str | None = None) -> str:
    """``"<experiment>, seed <seed>: <what>"``, leaving out the parts that are not given."""
    names = ", ".join(part for part in (experiment, None if seed is None else f"seed {seed}") if part)
    return f"{names}: {what}" if names else what


def styled(plot):
    """Run a plot function under :data:`STYLE` (text takes its size when it is created)."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return plot(*args, **kwargs)

    return wrapper


def subplots(output_path: PathLike | None, *args, **kwargs):
    """``plt.subplots(...)``, on the non-interactive Agg backend when the figure goes to a file."""
    import matplotlib

    if output_path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, output_path: PathLike | None, dpi: int | None = None):
    """Lay ``fig`` out, write it to ``output_path`` (if given) atomically at ``dpi`` (None:
    :data:`PRINT_DPI`) and close it; return ``fig``."""
    fig.tight_layout()
    if output_path is None:
        return fig
    import matplotlib.pyplot as plt

    output_path = Path(output_path)
    with atomic_path(output_path) as tmp:
        fig.savefig(tmp, dpi=dpi or PRINT_DPI, format=output_path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return fig

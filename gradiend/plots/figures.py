"""Making and saving figures: off-screen when they go to a file, written atomically in the suffix's format."""
from __future__ import annotations

from pathlib import Path

from gradiend.util.io import PathLike, atomic_path


def subplots(output_path: PathLike | None, *args, **kwargs):
    """``plt.subplots(...)``, on the non-interactive Agg backend when the figure goes to a file."""
    import matplotlib

    if output_path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, output_path: PathLike | None, dpi: int | None = None):
    """Lay ``fig`` out, write it to ``output_path`` (if given) atomically and close it; return ``fig``."""
    fig.tight_layout()
    if output_path is None:
        return fig
    import matplotlib.pyplot as plt

    output_path = Path(output_path)
    with atomic_path(output_path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=output_path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return fig

"""plot_training_convergence draws a run's training.json and marks the best step."""
import pytest

from gradiend.plots.convergence import NON_CONVERGED_MARK, plot_training_convergence
from gradiend.util.io import write_json


def _stats(converged):
    history = [{"step": s, "correlation": c, "mean_by_class": {"she": m, "he": -m}, "normalised": s == 20}
               for s, c, m in [(0, 0.05, 0.0), (10, 0.4, 0.3), (20, 0.8, 0.7), (30, 0.75, 0.6)]]
    return {"target_classes": ["she", "he"], "history": history, "best_step": 20,
            "convergence_info": {"converged": converged, "score_threshold": 0.5}}


def test_plot_from_dict_and_folder(tmp_path):
    fig = plot_training_convergence(_stats(True), tmp_path / "conv.png")
    assert (tmp_path / "conv.png").stat().st_size > 1000
    assert NON_CONVERGED_MARK not in fig._suptitle.get_text()
    write_json(tmp_path / "model" / "training.json", _stats(False))
    fig = plot_training_convergence(tmp_path / "model")
    assert NON_CONVERGED_MARK in fig._suptitle.get_text()
    lines = fig.axes[0].get_lines()
    assert any(list(line.get_xdata()) == [20, 20] for line in lines)  # best step marked


def test_plot_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        plot_training_convergence(tmp_path / "missing")
    with pytest.raises(ValueError, match="no evaluations"):
        plot_training_convergence({"history": []})

"""Documented evaluator behaviour: plot figures come back, each decoder call returns only its direction."""
import pytest

from gradiend.evaluation.evaluator import Evaluator
from tests.evaluation_support import demo_tables, gradiend_parts


@pytest.fixture(scope="module")
def parts(tiny_masked_lm_dir, demo_corpus):
    table, neutral = demo_tables(demo_corpus, per_class=20, neutral=6)
    return gradiend_parts(tiny_masked_lm_dir, table, neutral, batch_size=16)


def test_evaluate_encoder_plot_without_output_dir_returns_the_figure(parts, tmp_path):
    from matplotlib.figure import Figure

    result = Evaluator(parts).evaluate_encoder(plot=True)
    assert isinstance(result["figure"], Figure) and "plot_path" not in result
    assert len(result["figure"].axes[0].collections) > 0  # the distributions were drawn
    assert list(tmp_path.iterdir()) == []
    saved = Evaluator(parts).evaluate_encoder(plot=True, output_dir=tmp_path)
    assert (tmp_path / "distributions.png").is_file() and saved["plot_path"] == str(tmp_path / "distributions.png")


def test_second_decoder_call_returns_only_the_requested_direction(parts):
    evaluator = Evaluator(parts)
    grid = {"lrs": [1e-2], "feature_factors": None}
    strengthen = evaluator.evaluate_decoder(**grid)
    weaken = evaluator.evaluate_decoder(**grid, increase_target_probabilities=False)
    assert {k for k in strengthen if k not in ("grid", "non_finite_cells")} == {"she", "he"}
    assert {k for k in weaken if k not in ("grid", "non_finite_cells")} == {"she_weaken", "he_weaken"}
    # the evaluator still remembers both, so rewriting without decoder_results works in either direction
    assert {"she", "he", "she_weaken", "he_weaken"} <= set(evaluator.last_decoder_results)
    both = evaluator.evaluate_decoder(**grid, increase_target_probabilities=None)
    assert {k for k in both if k not in ("grid", "non_finite_cells")} == {"she", "he", "she_weaken", "he_weaken"}

"""In-training encoder probe: rows tokenised once per model, scores from the encoded values."""
import numpy as np
import pandas as pd
import pytest
import torch

import gradiend
from gradiend.model.with_gradiend import ModelWithGradiend
from gradiend.training.encoder_probe import EncoderProbe
from gradiend.data.rows import TRAINING_LABEL, Rows
from gradiend.util.stats import pearson
from tests.objectives_support import hand_encoded

FRAME = pd.DataFrame({
    "masked": ["Nancy called her friend when [MASK] arrived.", "Yesterday [MASK] played the guitar.",
               "The chef tasted the soup, then [MASK] added pepper.", "After lunch [MASK] went home.",
               "On Monday [MASK] read a book."],
    "factual": ["she", "he", "he", "she", "he"],
    "alternative": ["he", "she", "she", "he", "she"],
    TRAINING_LABEL: [1.0, -1.0, -1.0, 1.0, -1.0],
})


@pytest.fixture(scope="module")
def model(tiny_masked_lm_dir):
    torch.manual_seed(0)
    return ModelWithGradiend.from_pretrained(tiny_masked_lm_dir, source="alternative")


def _rows():
    return Rows(FRAME, {}, "validation")


def test_probe_tokenises_once_and_matches_direct_encoding(model, monkeypatch):
    probe = EncoderProbe(_rows(), ["she", "he"], "alternative", batch_size=2, progress=False)
    calls = []
    original = model.prepare
    monkeypatch.setattr(model, "prepare", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = probe.evaluate(model)
    second = probe.evaluate(model)
    assert len(calls) == 3  # 5 rows in batches of 2, prepared at the first evaluation only
    expected = model.encode_batch(FRAME["masked"].tolist(), FRAME["factual"].tolist(),
                                  FRAME["alternative"].tolist()).double().numpy()
    torch.testing.assert_close(torch.from_numpy(first.encoded), torch.from_numpy(expected), rtol=1e-5, atol=1e-6)
    # the values themselves, from a reference outside the library's encoding paths, and numpy's Pearson
    hand = np.array([hand_encoded(model, m, f, a, "alternative")
                     for m, f, a in zip(FRAME["masked"], FRAME["factual"], FRAME["alternative"])])
    np.testing.assert_allclose(first.encoded, hand, rtol=1e-4, atol=1e-5)
    labels = FRAME[TRAINING_LABEL].to_numpy(float)
    assert second.correlation == first.correlation == pytest.approx(np.corrcoef(hand, labels)[0, 1], rel=1e-4)
    assert first.mean_by_class == pytest.approx({"she": hand[labels == 1].mean(), "he": hand[labels == -1].mean()},
                                                rel=1e-4, abs=1e-6)
    assert first.n_by_class == {"she": 2, "he": 3}


def test_pearson_edge_cases_and_package_exports():
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    assert pearson([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)  # 4 / 5 by hand
    assert pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert pearson([1.0], [1.0]) == 0.0 and pearson([1.0, 1.0], [1.0, -1.0]) == 0.0
    from gradiend.evaluation import encoder_metrics
    from gradiend.training import encoder_probe
    assert encoder_metrics.pearson is encoder_probe.pearson is pearson
    from gradiend.training.history import load_training_stats
    assert gradiend.load_training_stats is load_training_stats

"""Encoder metrics on hand-made encoded tables."""
import numpy as np
import pandas as pd
import pytest

from gradiend.evaluation.encoder_metrics import encoder_metrics, pearson, ternary


def table():
    rows = [
        ("training", 1, "she", "she", 0.9), ("training", 1, "she", "She", 0.7), ("training", 1, "she", "she", 0.3),
        ("training", -1, "he", "he", -0.8), ("training", -1, "he", "he", -0.6), ("training", -1, "he", "He", 0.1),
        ("neutral_training_masked", 0, "neutral", "the", 0.05),
        ("neutral_training_masked", 0, "neutral", "soup", -0.7),
        ("neutral_dataset", 0, "neutral", "car", 0.2),
    ]
    return pd.DataFrame(rows, columns=["type", "label", "source_id", "source_token", "encoded"])


def test_correlation_is_pearson_over_training_rows():
    frame = table()
    metrics = encoder_metrics(frame)
    training = frame[frame["type"] == "training"]
    expected = np.corrcoef(training["encoded"], training["label"])[0, 1]
    assert metrics["correlation"] == pytest.approx(expected)
    assert metrics["training_only"]["correlation"] == pytest.approx(expected)
    # neutral rows change the all-data correlation
    assert metrics["all_data"]["correlation"] != pytest.approx(expected)


def test_ternary_accuracy_and_boundaries():
    assert ternary([-0.5, -0.49, 0.49, 0.5]).tolist() == [-1, 0, 0, 1]
    metrics = encoder_metrics(table())
    # ternary hits: 0.9, 0.7 (+1); -0.8, -0.6 (-1); neutral 0.05 and 0.2 → 0; misses 0.3, 0.1, -0.7
    assert metrics["accuracy"] == pytest.approx(6 / 9)
    assert metrics["training_only"]["accuracy"] == pytest.approx(4 / 6)
    assert metrics["target_classes_only"]["accuracy"] == pytest.approx(5 / 6)  # sign: only 0.1 wrong
    assert metrics["boundaries"] == {"neg_boundary": -0.5, "pos_boundary": 0.5, "neutral_boundary": 0.0}


def test_statistics_by_class_type_and_feature_class():
    metrics = encoder_metrics(table())
    assert metrics["mean_by_class"] == pytest.approx({"1": (0.9 + 0.7 + 0.3) / 3, "-1": (-0.8 - 0.6 + 0.1) / 3})
    assert metrics["n_by_class"] == {"-1": 3, "1": 3}
    assert metrics["min_by_class"]["1"] == 0.3 and metrics["max_by_class"]["-1"] == 0.1
    assert metrics["q1_by_class"]["1"] == pytest.approx(np.quantile([0.9, 0.7, 0.3], 0.25))
    assert metrics["std_by_class"]["-1"] == pytest.approx(np.std([-0.8, -0.6, 0.1]))
    assert metrics["mean_by_feature_class"] == pytest.approx(
        {"she": metrics["mean_by_class"]["1"], "he": metrics["mean_by_class"]["-1"]})
    assert metrics["neutral_mean_by_type"] == pytest.approx(
        {"neutral_training_masked": (0.05 - 0.7) / 2, "neutral_dataset": 0.2})
    assert metrics["mean_by_target"]["she"]["She"] == pytest.approx(0.7)
    assert metrics["label_value_to_class_name"] == {"0": "neutral", "1": "she", "-1": "he"}
    assert metrics["sample_counts"]["by_type"] == {
        "neutral_dataset": 1, "neutral_training_masked": 2, "training": 6}


def test_errors_and_degenerate_inputs():
    frame = table()
    with pytest.raises(ValueError, match="every encoded row is neutral"):
        encoder_metrics(frame[frame["type"] != "training"])
    with pytest.raises(ValueError, match="both target classes"):
        encoder_metrics(frame[frame["label"] >= 0])
    with pytest.raises(ValueError, match="lacks column"):
        encoder_metrics(frame.drop(columns=["source_id"]))
    assert pearson([1.0], [1.0]) == 0.0
    assert pearson([1.0, 1.0], [1.0, -1.0]) == 0.0

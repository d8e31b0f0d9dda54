"""Encoder evaluation on the tiny random models: rows, labels, neutral masking, JVP = plain, files."""
import numpy as np
import pandas as pd
import pytest
import torch

from gradiend.evaluation.encoder import EncoderEvaluator
from gradiend.evaluation.neutral_rows import mask_random_word
from gradiend.util.io import read_json
from tests.evaluation_support import demo_tables, gradiend_parts
from tests.objectives_support import hand_encoded


@pytest.fixture(scope="module")
def tables(demo_corpus):
    return demo_tables(demo_corpus)


@pytest.fixture(scope="module")
def masked_parts(tiny_masked_lm_dir, tables):
    return gradiend_parts(tiny_masked_lm_dir, *tables)


def test_rows_labels_and_neutral_masks(masked_parts):
    frame = EncoderEvaluator(masked_parts).encoded_frame("test")
    training = frame[frame["type"] == "training"]
    # alternative source: the encoded gradient is of the alternative token, label follows its class
    assert set(training["source_id"]) == {"she", "he"}
    assert (training["label"] == training["source_id"].map({"she": 1, "he": -1})).all()
    assert (training["source_id"] == training["alternative_class"]).all()
    neutral = frame[frame["type"] != "training"]
    assert set(neutral["type"]) == {"neutral_training_masked", "neutral_dataset"}
    assert (neutral["label"] == 0).all()
    excluded = masked_parts.neutral_exclusions()
    tokenizer = masked_parts.model_with_gradiend.tokenizer
    for masked, word in zip(neutral["masked"], neutral["factual"]):
        assert masked.count("[MASK]") == 1 and word.lower() not in excluded
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1
    templates = neutral[neutral["type"] == "neutral_training_masked"]
    assert len(templates) == len(training.drop_duplicates(["masked", "factual"]))
    assert torch.isfinite(torch.tensor(frame["encoded"].to_numpy())).all()


def test_jvp_encoding_matches_plain_gradients(masked_parts):
    evaluator = EncoderEvaluator(masked_parts)
    frame = evaluator.encoded_frame("test").groupby("type").head(2)
    model = masked_parts.model_with_gradiend
    for _, row in frame.iterrows():
        kind = None if row["type"] == "training" else "factual"
        plain = model.encode_batch([row["masked"]], [row["factual"]], [row["alternative"]], kind=kind, plain=True)
        assert float(plain[0]) == pytest.approx(row["encoded"], abs=1e-5)
        # a reference outside the library's losses and gradient paths (HF forward, torch CE, autograd)
        hand = hand_encoded(model, row["masked"], row["factual"], row["alternative"], kind or model.source)
        assert hand == pytest.approx(row["encoded"], abs=1e-5)


def test_evaluate_writes_deterministic_files(masked_parts, tmp_path):
    evaluator = EncoderEvaluator(masked_parts)
    first = evaluator.evaluate(output_dir=tmp_path / "a", plot=True)
    evaluator.evaluate(output_dir=tmp_path / "b")
    for name in ("metrics.json", "encoded.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "distributions.png").is_file()
    stored = read_json(tmp_path / "a" / "metrics.json")
    assert stored["correlation"] == pytest.approx(first["correlation"])
    encoded = pd.read_parquet(tmp_path / "a" / "encoded.parquet")
    assert len(encoded) == stored["sample_counts"]["total"]
    # the stored numbers are those of the stored rows
    assert stored["mean_by_type"] == pytest.approx(encoded.groupby("type")["encoded"].mean().to_dict())
    assert set(stored["mean_by_type"]) == {"training", "neutral_training_masked", "neutral_dataset"}
    training = encoded[encoded["type"] == "training"]
    expected = np.corrcoef(training["encoded"].to_numpy(float), training["label"].to_numpy(float))[0, 1]
    assert stored["correlation"] == pytest.approx(expected, abs=1e-9)


def test_validation_split_has_no_template_rows_and_max_size(masked_parts):
    frame = EncoderEvaluator(masked_parts).encoded_frame("validation", max_size=2)
    assert set(frame["type"]) == {"training", "neutral_dataset"}
    assert frame[frame["type"] == "training"].groupby("transition").size().to_dict() == {"she\u2192he": 2, "he\u2192she": 2}
    assert (frame["type"] == "neutral_dataset").sum() == 2


def test_causal_neutral_rows_keep_left_context(tiny_causal_lm_dir, tables):
    parts = gradiend_parts(tiny_causal_lm_dir, *tables)
    frame = EncoderEvaluator(parts).encoded_frame("test")
    tokenizer = parts.model_with_gradiend.tokenizer
    neutral = frame[frame["type"] != "training"]
    assert len(neutral) > 0
    for masked in neutral["masked"]:
        prefix = masked.split("[MASK]")[0].rstrip()
        assert len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) >= 5


def test_mask_random_word_is_seeded_and_skips_excluded(masked_parts):
    import random

    tokenizer = masked_parts.model_with_gradiend.tokenizer
    text = "Maria said that she wanted the red car."
    picks = {mask_random_word(tokenizer, text, {"she", "maria"}, random.Random(s), causal=False) for s in range(30)}
    words = {word for _, word in picks}
    assert "she" not in words and "Maria" not in words and len(words) > 2
    again = mask_random_word(tokenizer, text, {"she"}, random.Random(4), causal=False)
    assert again == mask_random_word(tokenizer, text, {"she"}, random.Random(4), causal=False)

"""Tiny offline demo models: random builders (fast) and pre-training (slow)."""
import hashlib
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from gradiend.demo.models import build_tiny_causal_lm, build_tiny_masked_lm


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_masked_lm_loads_offline_with_auto_classes(tiny_masked_lm_dir, demo_corpus):
    model = AutoModelForMaskedLM.from_pretrained(tiny_masked_lm_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_masked_lm_dir)
    assert model.config.model_type == "bert"
    assert model.config.max_position_embeddings < 256
    assert tokenizer.model_max_length == model.config.max_position_embeddings
    assert len(tokenizer) == model.config.vocab_size < 1000
    assert tokenizer.mask_token == "[MASK]" and tokenizer.pad_token == "[PAD]"
    ids = tokenizer(demo_corpus[:200]).input_ids
    assert all(row[0] == tokenizer.cls_token_id and row[-1] == tokenizer.sep_token_id for row in ids)
    assert not any(tokenizer.unk_token_id in row for row in ids)
    # Whole words, lower-cased: a name and "She" are single tokens.
    assert tokenizer.tokenize("Maria said She") == ["maria", "said", "she"]
    batch = tokenizer(["Maria went home.", "He said that."], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (*batch.input_ids.shape, len(tokenizer))


def test_causal_lm_loads_offline_with_auto_classes(tiny_causal_lm_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm_dir)
    assert model.config.model_type == "gpt2"
    assert model.config.n_positions < 256
    assert tokenizer.model_max_length == model.config.n_positions
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.config.pad_token_id
    for word in ("she", "he", "they", "them", "their", "his", "her", "him", "She", "He"):
        assert len(tokenizer(" " + word).input_ids) == 1, word
    assert len(tokenizer("she").input_ids) >= 1
    batch = tokenizer(["Maria went home.", "He said that she left."], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[-1] == len(tokenizer)


@pytest.mark.parametrize("builder", [build_tiny_masked_lm, build_tiny_causal_lm])
def test_builds_are_byte_identical_for_a_seed(tmp_path, builder):
    corpus = ["Maria finished the report before she went home.", "The students said they left."] * 5
    first = builder(tmp_path / "a", corpus, seed=7)
    second = builder(tmp_path / "b", corpus, seed=7)
    other = builder(tmp_path / "c", corpus, seed=8)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _sha(first / name) == _sha(second / name), name
    assert _sha(first / "model.safetensors") != _sha(other / "model.safetensors")


def test_builder_leaves_global_torch_rng_alone(tmp_path):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    build_tiny_causal_lm(tmp_path / "m", ["She went home."] * 3, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_custom_shape_and_config_values(tmp_path):
    path = build_tiny_masked_lm(tmp_path / "m", ["He left."], hidden_size=64, num_layers=3,
                                num_heads=4, intermediate_size=96)
    config = json.loads((path / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["intermediate_size"]) == (64, 3, 4, 96)
    assert config["hidden_dropout_prob"] == 0.0


def test_empty_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        build_tiny_masked_lm(tmp_path / "m", [])

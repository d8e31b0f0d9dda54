"""Base-model loading (offline, eager attention, safetensors) and backbone parameter selection."""
from __future__ import annotations

import shutil

import pytest
import torch

from gradiend.model.backbone import mapped_parameters
from gradiend.model.loading import BaseModelNotAvailableError, load_base_model


def test_masked_lm_loads_in_eval_mode_with_eager_attention(tiny_masked_lm_dir):
    model, tokenizer, objective = load_base_model(tiny_masked_lm_dir)
    assert type(model).__name__ == "BertForMaskedLM"
    assert objective.name == "masked_lm" and tokenizer.mask_token == "[MASK]"
    assert model.config._attn_implementation == "eager"
    assert not model.training


def test_causal_lm_gets_eos_as_pad_token(tiny_causal_lm_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm_dir)
    tokenizer.pad_token = None
    copy = tmp_path / "no-pad"
    shutil.copytree(tiny_causal_lm_dir, copy)
    tokenizer.save_pretrained(copy)
    model, loaded_tokenizer, objective = load_base_model(copy, torch_dtype="float64")
    assert objective.name == "causal_lm"
    assert loaded_tokenizer.pad_token == loaded_tokenizer.eos_token
    assert next(model.parameters()).dtype == torch.float64


def test_masked_lm_objective_on_a_causal_model_is_refused(tiny_causal_lm_dir):
    with pytest.raises(ValueError, match="mask token"):
        load_base_model(tiny_causal_lm_dir, objective="masked_lm")


@pytest.mark.parametrize("name", ["no-such-org/no-such-model", "./no/such/folder"])
def test_unavailable_models_raise_one_clear_error(name):
    with pytest.raises(BaseModelNotAvailableError, match=f"{name!r}.*not available offline"):
        load_base_model(name)


def test_non_safetensors_weights_are_refused(tiny_masked_lm_dir, tmp_path):
    copy = tmp_path / "bin-only"
    shutil.copytree(tiny_masked_lm_dir, copy)
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    with pytest.raises(BaseModelNotAvailableError, match="safetensors"):
        load_base_model(copy)


def test_backbone_parameters_exclude_heads_and_count_tied_embeddings_once(tiny_masked_lm_dir, tiny_causal_lm_dir):
    bert, _, _ = load_base_model(tiny_masked_lm_dir)
    names = list(mapped_parameters(bert))
    assert names == [n for n, _ in bert.named_parameters() if n.startswith("bert.")]
    assert "bert.embeddings.word_embeddings.weight" in names
    assert not any(n.startswith("cls.") for n in names)
    assert bert.cls.predictions.decoder.weight is mapped_parameters(bert)["bert.embeddings.word_embeddings.weight"]

    gpt, _, _ = load_base_model(tiny_causal_lm_dir)
    gpt_names = list(mapped_parameters(gpt))
    assert gpt_names[0] == "transformer.wte.weight" and "lm_head.weight" not in gpt_names
    assert len(gpt_names) == len(set(gpt_names)) == len(list(gpt.transformer.parameters()))


def test_parameter_patterns_narrow_the_backbone(tiny_masked_lm_dir):
    bert, _, _ = load_base_model(tiny_masked_lm_dir)
    layer0 = mapped_parameters(bert, ["bert.encoder.layer.0.*"])
    assert list(layer0) == [n for n, _ in bert.named_parameters() if n.startswith("bert.encoder.layer.0.")]
    assert len(layer0) == 16  # q, k, v, attention output, its LayerNorm, intermediate, output, its LayerNorm: weight + bias
    both = mapped_parameters(bert, ["*.query.weight", "bert.embeddings.word_embeddings.weight"])
    assert list(both) == [n for n in mapped_parameters(bert) if n in both]
    assert len(both) == bert.config.num_hidden_layers + 1
    with pytest.raises(ValueError, match=r"'cls\.\*' matches no backbone parameter"):
        mapped_parameters(bert, ["cls.*"])
    with pytest.raises(ValueError, match="'layer.0.*' matches no backbone"):
        mapped_parameters(bert, ["layer.0.*"])  # full match: a partial name is not enough

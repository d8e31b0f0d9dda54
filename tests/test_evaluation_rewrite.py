"""The rewritten-model folder: loads with Auto classes, differs from the base exactly by lr·(ff·w + b)."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from gradiend.evaluation.evaluator import Evaluator
from gradiend.evaluation.model_card import save_rewritten_model
from tests.evaluation_support import demo_tables, gradiend_parts

ENTRY = {"learning_rate": 0.5, "feature_factor": -1.0, "target_class": "she", "strengthen": False, "lms": 0.30,
         "base_lms": 0.31, "value": 0.9, "base_value": 0.4, "policy": "lms_threshold", "fallback": False}


@pytest.fixture(scope="module")
def tables(demo_corpus):
    return demo_tables(demo_corpus)


@pytest.fixture(scope="module")
def masked_parts(tiny_masked_lm_dir, tables):
    return gradiend_parts(tiny_masked_lm_dir, *tables)


def assert_exact_update(mwg, loaded, lr, ff):
    base = dict(mwg.base_model.named_parameters())
    update = mwg.gradiend.unflatten(mwg.update_vector(ff, "decoder"))  # ff·w + b per mapped parameter
    mapped = set(mwg.gradiend.param_map)
    changed = 0
    for name, param in loaded.named_parameters():
        if name in mapped:
            expected = base[name].detach() + (update[name] * lr).to(base[name].dtype)
            assert torch.equal(param.detach(), expected), name
            changed += int(not torch.equal(param.detach(), base[name].detach()))
        else:
            assert torch.equal(param.detach(), base[name].detach()), name
    assert changed > 0 and mapped <= {n for n, _ in loaded.named_parameters()}


def test_saved_folder_loads_and_differs_by_the_update(masked_parts, tmp_path):
    mwg = masked_parts.model_with_gradiend
    folder = save_rewritten_model(mwg, ENTRY, tmp_path / "she_weaken", feature_description="she vs he pronouns")
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    loaded = AutoModelForMaskedLM.from_pretrained(folder)
    assert_exact_update(mwg, loaded, 0.5, -1.0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("she")["input_ids"] == mwg.tokenizer("she")["input_ids"]
    card = (folder / "README.md").read_text()
    for text in ("weaken `she`", "| learning rate | 0.5 |", "| feature factor | -1 |", "0.31 → 0.3",
                 "she vs he pronouns", str(mwg.base_model_id)):
        assert text in card
    facts = json.loads((folder / "gradiend_rewrite.json").read_text())
    assert facts["learning_rate"] == 0.5 and facts["lms_before"] == 0.31 and facts["gradiend_version"]
    assert not list(tmp_path.glob(".she_weaken*"))  # no temporary folder left behind


def test_evaluator_rewrite_semantics(masked_parts, tmp_path):
    evaluator = Evaluator(masked_parts)
    results = {"she": {**ENTRY, "strengthen": True, "feature_factor": 1.0, "learning_rate": 0.2},
               "he": {**ENTRY, "target_class": "he", "strengthen": True, "feature_factor": -1.0}}
    model = evaluator.rewrite_base_model(decoder_results=results, target_class="she")
    assert isinstance(model, torch.nn.Module) and model is not masked_parts.model_with_gradiend.base_model
    assert_exact_update(masked_parts.model_with_gradiend, model, 0.2, 1.0)
    paths = evaluator.rewrite_base_model(decoder_results=results, target_class=["she", "he"], output_dir=tmp_path)
    assert [p.name for p in paths] == ["she", "he"]
    single = evaluator.rewrite_base_model(decoder_results=results, target_class="he", output_dir=tmp_path / "one")
    assert (single / "config.json").is_file()
    with pytest.raises(KeyError, match="she_weaken"):
        evaluator.rewrite_base_model(decoder_results=results, target_class="she", increase_target_probabilities=False)
    with pytest.raises(ValueError, match="unknown target class 'it'"):
        evaluator.rewrite_base_model(decoder_results=results, target_class="it")
    with pytest.raises(ValueError, match="run evaluate_decoder"):
        Evaluator(masked_parts).rewrite_base_model(target_class="she")


def test_causal_rewrite_loads(tiny_causal_lm_dir, tables, tmp_path):
    parts = gradiend_parts(tiny_causal_lm_dir, *tables)
    folder = save_rewritten_model(parts.model_with_gradiend, ENTRY, tmp_path / "gpt")
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert_exact_update(parts.model_with_gradiend, loaded, 0.5, -1.0)
    assert AutoTokenizer.from_pretrained(folder).model_max_length <= 1024

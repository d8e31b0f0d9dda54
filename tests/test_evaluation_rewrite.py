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


# --- the card: a base model others can resolve, license, limitations, citation; files others can read ----

def _front_matter(card: str) -> dict:
    import yaml

    assert card.startswith("---\n")
    return yaml.safe_load(card[4:].split("\n---", 1)[0])


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def licensed_base(tiny_masked_lm_dir, tmp_path_factory):
    """A copy of the tiny BERT whose model card states a license, as Hub models do."""
    import shutil

    folder = tmp_path_factory.mktemp("licensed") / "tiny-bert"
    shutil.copytree(tiny_masked_lm_dir, folder)
    (folder / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n\n# tiny\n")
    return folder


def test_card_of_a_local_base_model_names_folder_digest_and_its_license(masked_parts, licensed_base, tmp_path):
    from gradiend.model.base_source import describe_base_model

    base = describe_base_model(str(licensed_base))
    folder = save_rewritten_model(masked_parts.model_with_gradiend, ENTRY, tmp_path / "out", base=base)
    card = (folder / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["license"] == "mit" and "base_model" not in meta  # the Hub resolves only Hub ids
    digest = _sha256(licensed_base / "model.safetensors")
    assert f"The local model folder `{licensed_base.resolve()}`. Its weights: `model.safetensors` SHA-256 `{digest}`." in card
    assert "`mit`, the base model's license" in card
    facts = json.loads((folder / "gradiend_rewrite.json").read_text())
    assert facts["base_model_source"] == {"reference": str(licensed_base), "kind": "local",
                                          "folder": str(licensed_base.resolve()),
                                          "weights_sha256": {"model.safetensors": digest},
                                          "license": "mit", "built_by": None}


def test_card_of_a_hub_model_links_it_and_of_a_built_model_says_who_built_it(masked_parts, licensed_base, tmp_path):
    from gradiend.model.base_source import describe_base_model

    mwg = masked_parts.model_with_gradiend
    hub = describe_base_model("some-org/tiny-bert", folder=licensed_base)  # the folder plays the Hub cache
    card = (save_rewritten_model(mwg, ENTRY, tmp_path / "hub", base=hub) / "README.md").read_text()
    meta = _front_matter(card)
    assert (meta["base_model"], meta["license"]) == ("some-org/tiny-bert", "mit")
    assert "[`some-org/tiny-bert`](https://huggingface.co/some-org/tiny-bert) on the Hugging Face Hub." in card

    built = describe_base_model("demo:tiny-bert", folder=licensed_base, built_by="this pipeline's `demo_model` rule")
    card = (save_rewritten_model(mwg, ENTRY, tmp_path / "built", base=built) / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["license"] == "apache-2.0" and "base_model" not in meta  # the project's license, not the copy's
    assert "a small model built from scratch by this pipeline's `demo_model` rule" in card
    assert "tiny model trained on a generated demo corpus" in card  # the limitation a demo model adds

    unlicensed = describe_base_model("other-org/model", folder=tmp_path / "not-cached")
    assert unlicensed["license"] is None and unlicensed["weights_sha256"] == {}
    card = (save_rewritten_model(mwg, ENTRY, tmp_path / "other", base=unlicensed) / "README.md").read_text()
    assert _front_matter(card)["license"] == "other" and "check the base model's terms" in card


def test_card_has_limitations_and_cites_the_papers_as_citation_cff_does(masked_parts, tmp_path):
    import re
    from pathlib import Path

    import yaml

    folder = save_rewritten_model(masked_parts.model_with_gradiend, {**ENTRY, "fallback": True}, tmp_path / "out")
    card = (folder / "README.md").read_text()
    limitations = card.split("## Limitations\n\n", 1)[1].split("\n## ", 1)[0]
    assert "1 − P(she tokens) on held-out rows of she" in limitations  # the metric the entry was chosen by
    assert "No grid cell kept the LMS threshold" in limitations  # the fallback is a stated limitation
    cited = set(re.findall(r"arXiv:(\d{4}\.\d{5})", card.split("## Citation", 1)[1]))
    cff = yaml.safe_load((Path(__file__).resolve().parents[1] / "CITATION.cff").read_text())
    in_cff = {ref["identifiers"][0]["value"].removeprefix("arXiv:")
              for ref in [cff["preferred-citation"], *cff["references"]]}
    assert cited == in_cff == {"2502.01406", "2601.09313"}
    from gradiend import __version__

    assert str(cff["version"]) == __version__ and f"version = {{{__version__}}}" in card


def test_every_file_of_a_rewritten_model_is_readable_by_others(masked_parts, tmp_path):
    import os
    import stat

    previous = os.umask(0o022)
    try:
        folder = save_rewritten_model(masked_parts.model_with_gradiend, ENTRY, tmp_path / "out")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert "model.safetensors" in modes and modes == {name: 0o644 for name in modes}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755

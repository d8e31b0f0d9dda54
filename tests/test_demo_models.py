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


# --- pre-training ---------------------------------------------------------------------------

from gradiend.data.demo_corpus import generate_demo_corpus  # noqa: E402
from gradiend.demo.pretrain import (  # noqa: E402
    build_demo_model,
    pretrain_causal_lm,
    pretrain_masked_lm,
    pronoun_accuracy,
)

HELD_OUT = generate_demo_corpus(400, seed=12345)
_SWAP = {"she": "he", "he": "she", "She": "He", "He": "She"}


def _hand_she_he_accuracy(folder, kind, corpus, seed):
    """The documented yardstick, one sentence at a time on the saved model: masked LM, every pronoun
    masked, right when the true she/he outscores the other at its position; causal LM, right when
    " she" / " he" after the text before it favours the true one. Test sentences: the seeded split."""
    import re

    from gradiend.data.demo_corpus import DEMO_PRONOUNS
    from gradiend.demo.pretrain import _split

    test = _split(list(corpus), seed)[2]
    auto = AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM
    model, tokenizer = auto.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)

    def token(text):
        [piece] = tokenizer(text, add_special_tokens=False).input_ids
        return piece
    right = total = 0
    with torch.no_grad():
        for text in test:
            if kind == "masked":
                encoded = tokenizer(text, return_offsets_mapping=True)
                ids, words = list(encoded.input_ids), [text[b:e] for b, e in encoded.offset_mapping]
                ids = [tokenizer.mask_token_id if w.lower() in DEMO_PRONOUNS else t for t, w in zip(ids, words)]
                logits = model(torch.tensor([ids])).logits[0]
                for position, word in enumerate(words):
                    if word in _SWAP:
                        right += int(logits[position, token(word)] > logits[position, token(_SWAP[word])])
                        total += 1
            else:
                for match in re.finditer(r"\b(she|he)\b", text, re.IGNORECASE):
                    word, begin = match.group(0), match.start()
                    if begin == 0 or word not in _SWAP or text[begin - 1] != " ":
                        continue
                    logits = model(torch.tensor([tokenizer(text[: begin - 1]).input_ids])).logits[0, -1]
                    right += int(logits[token(" " + word)] > logits[token(" " + _SWAP[word])])
                    total += 1
    assert total > 0, "no she/he in the test sentences"
    return right / total


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_short_pretraining_is_deterministic_and_records_its_run(tmp_path, kind, demo_corpus,
                                                                 tiny_masked_lm_dir, tiny_causal_lm_dir):
    base = tiny_masked_lm_dir if kind == "masked" else tiny_causal_lm_dir
    pretrain = pretrain_masked_lm if kind == "masked" else pretrain_causal_lm
    corpus = demo_corpus[:120]
    args = {"max_steps": 8, "batch_size": 8, "warmup": 2, "eval_every": 4, "target_accuracy": 1.01}
    first = pretrain(base, corpus, tmp_path / "a", seed=3, **args)
    second = pretrain(base, corpus, tmp_path / "b", seed=3, **args)
    other = pretrain(base, corpus, tmp_path / "c", seed=4, **args)
    assert _sha(first / "model.safetensors") == _sha(second / "model.safetensors")
    assert _sha(first / "model.safetensors") != _sha(other / "model.safetensors")
    assert _sha(first / "model.safetensors") != _sha(base / "model.safetensors")
    info = json.loads((first / "pretraining.json").read_text())
    assert info["steps"] == 8 and info["seed"] == 3 and len(info["loss"]) == 8
    assert info["recipe"]["lr"] == 2e-3
    assert info["loss"][-1] < info["loss"][0]
    assert [check["step"] for check in info["validation_checks"]] == [4, 8]
    assert info["test_she_he_accuracy"] == pytest.approx(_hand_she_he_accuracy(first, kind, corpus, seed=3))
    assert info["train_sentences"] + info["validation_sentences"] + info["test_sentences"] == 120
    assert AutoTokenizer.from_pretrained(first).model_max_length == 128


def test_pretraining_stops_once_the_target_is_reached(tmp_path, demo_corpus, tiny_masked_lm_dir):
    out = pretrain_masked_lm(tiny_masked_lm_dir, demo_corpus[:200], tmp_path / "m", max_steps=30,
                             batch_size=8, eval_every=4, target_accuracy=0.0)
    info = json.loads((out / "pretraining.json").read_text())
    assert info["steps"] == 4 and len(info["validation_checks"]) == 1


def test_pronoun_accuracy_needs_a_she_or_he(tiny_masked_lm_dir):
    with pytest.raises(ValueError, match="no scorable she/he"):
        pronoun_accuracy(tiny_masked_lm_dir, ["The students went home.", "They left."])


def test_build_demo_model_reads_a_corpus_file_and_checks_kind(tmp_path):
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("\n".join(generate_demo_corpus(100, seed=1)) + "\n\n", encoding="utf-8")
    out = build_demo_model("masked", tmp_path / "model", corpus_file, steps=3, seed=0)
    assert json.loads((out / "pretraining.json").read_text())["train_sentences"] == 90
    assert AutoModelForMaskedLM.from_pretrained(out).config.model_type == "bert"
    with pytest.raises(ValueError, match="unknown demo model kind 'seq2seq'"):
        build_demo_model("seq2seq", tmp_path / "x", corpus_file)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        build_demo_model("masked", tmp_path / "x", tmp_path / "missing.txt")


@pytest.mark.slow
def test_pretrained_masked_lm_knows_she_from_he(pretrained_masked_lm_dir, tiny_masked_lm_dir):
    info = json.loads((pretrained_masked_lm_dir / "pretraining.json").read_text())
    assert info["test_she_he_accuracy"] >= 0.95
    assert pronoun_accuracy(pretrained_masked_lm_dir, HELD_OUT) >= 0.95
    assert pronoun_accuracy(tiny_masked_lm_dir, HELD_OUT) < 0.8


@pytest.mark.slow
def test_pretrained_causal_lm_knows_she_from_he(pretrained_causal_lm_dir, tiny_causal_lm_dir):
    info = json.loads((pretrained_causal_lm_dir / "pretraining.json").read_text())
    assert info["test_she_he_accuracy"] >= 0.90
    assert pronoun_accuracy(pretrained_causal_lm_dir, HELD_OUT) >= 0.90
    assert pronoun_accuracy(tiny_causal_lm_dir, HELD_OUT) < 0.8


@pytest.mark.slow
def test_builds_are_byte_identical_across_processes(tmp_path):
    import subprocess
    import sys

    script = ("import sys; from gradiend.demo.models import build_tiny_masked_lm, build_tiny_causal_lm;"
              "build_tiny_masked_lm(sys.argv[1] + '/m'); build_tiny_causal_lm(sys.argv[1] + '/c')")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True)
    for model in ("m", "c"):
        for name in ("model.safetensors", "tokenizer.json"):
            assert _sha(tmp_path / "a" / model / name) == _sha(tmp_path / "b" / model / name)


@pytest.mark.slow
def test_build_random_like_bert_base(tmp_path):
    from transformers import AutoConfig

    from gradiend.demo.models import build_random_like

    path = build_random_like("bert-base", tmp_path / "bert-base")
    config = AutoConfig.from_pretrained(path)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert len(tokenizer) == config.vocab_size == 30522
    assert tokenizer.tokenize("Maria said she went home.") == ["maria", "said", "she", "went", "home", "."]
    with pytest.raises(ValueError, match="unknown config_name 'bert-huge'"):
        build_random_like("bert-huge", tmp_path / "x")

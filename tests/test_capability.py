"""Capability checks: held-out (pseudo-)perplexity against a plain loop, the lm-evaluation-harness
command the stage hands a model folder to, and (where lm-eval is installed) a local task end to end."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gradiend import stages
from gradiend.evaluation.capability import heldout_perplexity, lm_eval_command, read_texts
from tests.evaluation_support import SENTENCES, tiny_bert, tiny_gpt2

BOOTSTRAP = 200


def _interval(per_text_ll, per_text_n, seed):
    index = np.random.default_rng(seed).integers(0, len(per_text_ll), size=(BOOTSTRAP, len(per_text_ll)))
    values = [math.exp(-sum(per_text_ll[i] for i in row) / sum(per_text_n[i] for i in row)) for row in index]
    return list(np.percentile(values, [2.5, 97.5]))


def test_causal_perplexity_equals_a_plain_loop():
    model, tokenizer = tiny_gpt2()
    lls, counts = [], []
    with torch.no_grad():
        for text in SENTENCES:  # a beginning-of-text token first, then every token is predicted
            ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            lls.append(sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids))))
            counts.append(len(ids) - 1)
    result = heldout_perplexity(model, tokenizer, SENTENCES, batch_size=4, bootstrap=BOOTSTRAP, seed=3)
    assert result["measure"] == "perplexity" and result["n_tokens"] == sum(counts)
    assert result["perplexity"] == pytest.approx(math.exp(-sum(lls) / sum(counts)), rel=1e-6)
    assert result["ci"] == pytest.approx(_interval(lls, counts, 3), rel=1e-6)


def test_masked_pseudo_perplexity_masks_every_token_in_turn():
    model, tokenizer = tiny_bert()
    lls, counts = [], []
    with torch.no_grad():
        for text in SENTENCES:
            ids = tokenizer(text)["input_ids"]
            ll = 0.0
            for p in range(1, len(ids) - 1):  # every token but [CLS] and [SEP], masked alone
                masked = ids[:p] + [tokenizer.mask_token_id] + ids[p + 1:]
                ll += float(torch.log_softmax(model(torch.tensor([masked])).logits[0, p].double(), -1)[ids[p]])
            lls.append(ll)
            counts.append(len(ids) - 2)
    result = heldout_perplexity(model, tokenizer, SENTENCES, batch_size=5, bootstrap=BOOTSTRAP, seed=0)
    assert result["measure"] == "pseudo-perplexity" and result["n_tokens"] == sum(counts)
    assert result["perplexity"] == pytest.approx(math.exp(-sum(lls) / sum(counts)), rel=1e-6)


def test_read_texts(tmp_path):
    path = tmp_path / "held_out.txt"
    path.write_text("one text\n\n  two text  \nthree\n", encoding="utf-8")
    assert read_texts(path) == ["one text", "two text", "three"] and read_texts(path, 2) == ["one text", "two text"]
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt has no text"):
        read_texts(tmp_path / "empty.txt")


def test_read_texts_reads_compressed_files_and_names_a_file_that_is_not_utf8(tmp_path):
    import gzip

    packed = tmp_path / "held_out.txt.gz"
    packed.write_bytes(gzip.compress("one text\n\n  two text  \n".encode("utf-8")))
    assert read_texts(packed) == ["one text", "two text"]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt is not UTF-8 text .*iconv"):
        read_texts(latin)


def test_the_lm_eval_command_hands_over_the_folder_and_the_tasks(tmp_path):
    command = lm_eval_command("/models/F", ["tiny_pronoun", "lambada"], tmp_path, include_path="~/tasks",
                              num_fewshot=2, limit=10, batch_size=4, device="cpu", dtype="bfloat16", seed=5)
    assert command == [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                       "pretrained=/models/F,dtype=bfloat16", "--tasks", "tiny_pronoun,lambada", "--output_path",
                       str(tmp_path), "--batch_size", "4", "--device", "cpu", "--seed", "5",
                       "--include_path", str(Path("~/tasks").expanduser()), "--num_fewshot", "2", "--limit", "10"]
    plain = lm_eval_command("gpt2", ["hellaswag"], tmp_path, trust_remote_code=True)
    assert plain[plain.index("--model_args") + 1] == "pretrained=gpt2,dtype=float32,trust_remote_code=True"
    assert "--include_path" not in plain and "--limit" not in plain and "--num_fewshot" not in plain


def _config(model_dir, text, lm_eval=None):
    return {"name": "exp", "base_model": str(model_dir), "base_model_path": str(model_dir), "trust_remote_code": False,
            "training": {"torch_dtype": "float32", "device_map": None},
            "capability": {"text": str(text), "max_texts": None, "batch_size": 8, "bootstrap": 50, "seed": 0,
                           "lm_eval": lm_eval}}


def test_capability_stage_scores_the_folder_and_refuses_bad_input_before_loading(tmp_path, tiny_causal_lm_dir,
                                                                                 monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = tmp_path / "held_out.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    output = tmp_path / "capability" / "base.json"
    stages.capability_model(_config(tiny_causal_lm_dir, text), model_name="base", model_dir=None, text=str(text),
                            output=str(output))
    result = json.loads(output.read_text())
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir), AutoTokenizer.from_pretrained(
        tiny_causal_lm_dir)
    expected = heldout_perplexity(model, tokenizer, SENTENCES, batch_size=8, bootstrap=50, seed=0)
    heldout = result["heldout"]
    assert heldout["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)
    assert heldout["ci"] == pytest.approx(expected["ci"], rel=1e-6) and result["lm_eval"] is None
    assert {k: v for k, v in heldout.items() if k not in ("perplexity", "ci")} == \
        {k: v for k, v in expected.items() if k not in ("perplexity", "ci")}
    assert result["model"] == "base" and len(result["text"]["sha256"]) == 64

    import gradiend.model.loading as loading

    monkeypatch.setattr(loading, "load_base_model", lambda *a, **k: pytest.fail("weights loaded before the check"))
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="has no text"):
        stages.capability_model(_config(tiny_causal_lm_dir, text), model_name="base", model_dir=None,
                                text=str(tmp_path / "empty.txt"), output=str(tmp_path / "x.json"))
    if importlib.util.find_spec("lm_eval") is None:
        with pytest.raises(ModuleNotFoundError, match="pip install lm-eval"):
            stages.capability_model(_config(tiny_causal_lm_dir, text, {"tasks": ["x"]}), model_name="base",
                                    model_dir=None, text=str(text), output=str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()


def test_lm_eval_refuses_a_masked_lm_before_loading(tmp_path, tiny_masked_lm_dir, monkeypatch):
    import importlib.util as util

    import gradiend.model.loading as loading

    monkeypatch.setattr(util, "find_spec", lambda name, *a: object() if name == "lm_eval" else None)
    monkeypatch.setattr(loading, "load_base_model", lambda *a, **k: pytest.fail("weights loaded before the check"))
    text = tmp_path / "held_out.txt"
    text.write_text("the chef tasted the soup .\n", encoding="utf-8")
    block = {"tasks": ["x"], "include_path": None, "num_fewshot": None, "limit": None, "batch_size": 8}
    with pytest.raises(ValueError, match="evaluates causal LMs.*BertForMaskedLM"):
        stages.capability_model(_config(tiny_masked_lm_dir, text, block), model_name="base", model_dir=None,
                                text=str(text), output=str(tmp_path / "x.json"))


TASK = """task: tiny_pronoun
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
"""
DOCS = [{"context": "maria went home and", "choices": [" she", " he"], "label": 0},
        {"context": "john said that", "choices": [" she", " he"], "label": 1},
        {"context": "the doctor said that", "choices": [" she", " he"], "label": 0},
        {"context": "anna and david went home and then", "choices": [" she", " he"], "label": 1}]


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None, reason="lm-evaluation-harness is not installed")
def test_lm_eval_hand_off_on_a_local_task(tmp_path, tiny_causal_lm_dir, monkeypatch):
    """The task's accuracy as lm-eval reports it equals the model's own choice between the two endings."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "data.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    (tasks / "tiny_pronoun.yaml").write_text(TASK.format(data=tasks / "data.jsonl"), encoding="utf-8")
    text = tmp_path / "held_out.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    block = {"tasks": ["tiny_pronoun"], "include_path": str(tasks), "num_fewshot": None, "limit": None, "batch_size": 2}
    output = tmp_path / "F.json"
    stages.capability_model(_config(tiny_causal_lm_dir, text, block), model_name="F", model_dir=str(tiny_causal_lm_dir),
                            text=str(text), output=str(output))
    result = json.loads(output.read_text())["lm_eval"]

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir), AutoTokenizer.from_pretrained(
        tiny_causal_lm_dir)
    right = 0
    with torch.no_grad():
        for doc in DOCS:
            context = tokenizer(doc["context"])["input_ids"]
            scores = []
            for choice in doc["choices"]:
                ending = tokenizer(doc["context"] + choice)["input_ids"][len(context):]
                logp = torch.log_softmax(model(torch.tensor([context + ending])).logits[0].double(), -1)
                scores.append(sum(float(logp[len(context) + j - 1, t]) for j, t in enumerate(ending)))
            right += int(np.argmax(scores) == doc["label"])
    assert result["results"]["tiny_pronoun"]["acc,none"] == pytest.approx(right / len(DOCS))
    assert result["tasks"] == ["tiny_pronoun"] and "<output_path>" in result["command"]


def test_report_section_puts_the_models_side_by_side(tmp_path):
    from gradiend.stages.capability import capability_report_section

    def result(model, value, low, high, acc):
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps({
            "model": model, "text": {"path": "/data/held_out.txt"},
            "heldout": {"measure": "perplexity", "perplexity": value, "ci": [low, high], "n_texts": 6, "n_tokens": 90,
                        "bootstrap": 50, "confidence": 0.95},
            "lm_eval": {"tasks": ["tiny"], "results": {"tiny": {"acc,none": acc, "acc_stderr,none": 0.1}}}}))
        return str(path)

    files = [result("base", 20.5, 19.0, 22.0, 0.5), result("F", 21.25, 20.0, 23.5, 0.75)]
    lines = capability_report_section(files, lambda path: Path(path).name)
    text = "\n".join(lines)
    assert "| model | perplexity | tiny acc,none |" in text
    assert "| [base](base.json) | 20.5 [19, 22] | 0.5 |" in text and "| [F](F.json) | 21.25 [20, 23.5] | 0.75 |" in text
    assert "held_out.txt" in text and capability_report_section([], str) == []

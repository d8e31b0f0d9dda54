"""The stages on a tiny random GPT-2: one seed, no pruning, one cell; the rewrite is a causal LM."""
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.stages_support import StageRun, experiment_config


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_corpus, tiny_causal_lm_dir):
    root = tmp_path_factory.mktemp("causal")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus[:1000]) + "\n", encoding="utf-8")
    experiment = experiment_config(
        tiny_causal_lm_dir, corpus, root / "results", seeds=[3], rewrite=["M"],
        training={"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 3, "eval_steps": 3,
                  "learning_rate": 1.0e-3, "source": "factual"},
        decoder={"learning_rates": [0.5], "feature_factors": [1.0], "max_size_training_like": 12,
                 "max_size_neutral": 12})
    experiment["data"]["min_left_context_words"] = 3
    experiment["data"]["neutral"]["max_size"] = 12  # = decoder.max_size_neutral: the LMS scores every neutral text
    stage_run = StageRun(experiment, corpus, root / "results" / "exp")
    stage_run.data()
    stage_run.train(3)
    stage_run.evaluate(3)
    stage_run.select_seed()
    for name in stage_run.cells():
        stage_run.decoder_cell(name)
    return stage_run


def test_rows_have_left_context(run):
    table = pd.read_parquet(run.path("data", "training.parquet"))
    before = table["masked"].str.split(r"\[MASK\]").str[0].str.split().str.len()
    assert (before >= 3).all()


def test_factual_source_flips_the_feature_factors(run, tiny_causal_lm_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cell = json.loads(Path(run.cells()["lr~0.5_ff~1"]).read_text())
    assert cell["class_feature_factors"] == {"F": -1.0, "M": 1.0}
    base = json.loads(Path(run.cells()["base"]).read_text())
    assert base["class_feature_factors"] == cell["class_feature_factors"]
    # causal LMS: 1 / (1 + mean next-token NLL) over every neutral text, computed here token by token
    texts = pd.read_parquet(run.path("data", "neutral.parquet"))["text"].tolist()
    assert len(texts) == 12
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm_dir)
    nlls = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text)["input_ids"]
            log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            nlls += [-float(log_probs[t, ids[t + 1]]) for t in range(len(ids) - 1)]
    assert base["lms"] == pytest.approx(1 / (1 + sum(nlls) / len(nlls)), rel=1e-5)


def test_rewrite_strengthening_m_is_a_causal_lm(run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run.select_cell()
    summary = json.loads(Path(run.path("decoder", "summary.json")).read_text())
    assert summary["M"]["feature_factor"] == 1.0 and summary["M"]["cell"] == "lr~0.5_ff~1"
    assert summary["skipped"] == ["F", "M_weaken"]  # their feature factor (-1) is not in the grid
    assert "F_weaken" in summary
    run.rewrite("M")
    folder = Path(run.path("rewritten", "M"))
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model(**tokenizer("Anna said that", return_tensors="pt")).logits.shape[-1] == model.config.vocab_size
    assert json.loads((folder / "gradiend_rewrite.json").read_text())["objective"] == "causal_lm"

"""Feature comparisons on a tiny BERT: top-k overlap and cross-encoding against plain computations."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gradiend import stages
from gradiend import workflow_config as wfc
from gradiend.model.param_mapped import ParamMappedGradiendModel
from tests.objectives_support import hand_encoded
from tests.stages_support import StageRun, experiment_config

PNG_MAGIC = b"\x89PNG"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    root = tmp_path_factory.mktemp("comparison")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(demo_corpus[:1000]) + "\n", encoding="utf-8")
    training = {"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 4, "eval_steps": 2, "learning_rate": 1.0e-3}
    gender = experiment_config(tiny_masked_lm_dir, corpus, root / "results", seeds=[0], training=training)
    possessive = experiment_config(
        tiny_masked_lm_dir, corpus, root / "results", seeds=[0], training=training, rewrite=["H"],
        pre_prune={"n_samples": 8, "topk": 0.5, "source": "diff"},
        data={**gender["data"], "feature_targets": [{"id": "H", "targets": ["her"]}, {"id": "S", "targets": ["his"]}],
              "target_classes": ["H", "S"], "neutral": {"max_size": 30, "additional_excluded_words": ["she", "he"]}})
    out = {}
    for name, exp in (("gender", gender), ("possessive", possessive)):
        exp = {**exp, "name": name}
        run = StageRun(exp, corpus, root / "results" / name)
        run.data()
        pruned = exp["pre_prune"] is not None
        if pruned:
            run.prune()
        run.train(0, pruned)
        out[name] = run
    return out


def config_for(runs, stage, **block):
    comparison = {"experiments": list(runs), "topk": 50, "part": "decoder-weight", "max_size": 6, "batch_size": 4,
                  **block}
    return {"comparison": comparison, "experiments": {n: wfc.stage_config(r.experiment, stage) for n, r in runs.items()}}


def test_topk_overlap_equals_a_plain_set_computation(runs, tmp_path):
    models = [r.path("seeds", "0", "model") for r in runs.values()]
    stages.comparison_topk(config_for(runs, "comparison_topk"), name="pronouns", experiments=list(runs), models=models,
                           csv=str(tmp_path / "topk_overlap.csv"), plot=str(tmp_path / "topk_overlap.png"))
    frame = pd.read_csv(tmp_path / "topk_overlap.csv")
    assert list(frame.columns) == ["experiment_a", "experiment_b", "k_a", "k_b", "shared", "overlap"]
    assert len(frame) == 4
    # plain: |decoder weight| per kept entry, the 50 largest, as (parameter name, flat index) pairs
    sets = {}
    for name, path in zip(runs, models):
        gradiend = ParamMappedGradiendModel.from_pretrained(path)
        importance = gradiend.decoder.weight.detach().abs().sum(dim=1)
        keys = []
        for pname, spec in gradiend.param_map.items():
            count = int(np.prod(spec["shape"]))
            flat = torch.arange(count) if spec["repr"] == "all" else (
                spec["mask"].reshape(-1).nonzero().reshape(-1) if spec["repr"] == "mask" else spec["indices"])
            keys += [(pname, int(i)) for i in flat]
        top = torch.argsort(importance, descending=True, stable=True)[:50]
        sets[name] = {keys[int(i)] for i in top}
    assert len(sets["gender"]) == len(sets["possessive"]) == 50
    shared = len(sets["gender"] & sets["possessive"])
    row = frame[(frame.experiment_a == "gender") & (frame.experiment_b == "possessive")].iloc[0]
    assert (row.k_a, row.k_b, row.shared, row.overlap) == (50, 50, shared, shared / 50)
    assert frame[frame.experiment_a == frame.experiment_b]["overlap"].tolist() == [1.0, 1.0]
    assert (tmp_path / "topk_overlap.png").read_bytes()[:4] == PNG_MAGIC


def test_cross_encoding_equals_the_plain_gradient_path(runs, tmp_path):
    from gradiend.data.tables import read_training_data
    from gradiend.evaluation.comparison import comparison_rows
    from gradiend.stages.models import EVALUATION_SEED, load_base, with_checkpoint

    models = [r.path("seeds", "0", "model") for r in runs.values()]
    trainings = [r.path("data", "training.parquet") for r in runs.values()]
    config = config_for(runs, "comparison_cross_encoding")
    stages.comparison_cross_encoding(config, name="pronouns", experiments=list(runs), models=models,
                                     trainings=trainings, csv=str(tmp_path / "cross.csv"), plot=str(tmp_path / "cross.png"))
    frame = pd.read_csv(tmp_path / "cross.csv")
    assert list(frame.columns) == ["encoder_experiment", "data_experiment", "factual_class", "n", "mean_encoded",
                                   "std_encoded"]
    assert sorted(set(zip(frame.data_experiment, frame.factual_class))) == [
        ("gender", "F"), ("gender", "M"), ("possessive", "H"), ("possessive", "S")]
    assert len(frame) == 8 and (frame["n"] == 6).all()
    assert (tmp_path / "cross.png").read_bytes()[:4] == PNG_MAGIC

    cuts = config["experiments"]
    base = load_base(cuts["gender"])
    encoder = with_checkpoint(cuts["possessive"], base, models[1])
    rows = comparison_rows(read_training_data(trainings[0]), ["F", "M"], 6, EVALUATION_SEED)
    for cls in ("F", "M"):
        chosen = rows[rows["factual_class"] == cls]
        plain = encoder.encode_batch(list(chosen["masked"]), list(chosen["factual"]), list(chosen["alternative"]),
                                     plain=True)
        row = frame[(frame.encoder_experiment == "possessive") & (frame.data_experiment == "gender")
                    & (frame.factual_class == cls)].iloc[0]
        assert row.mean_encoded == pytest.approx(float(plain.double().mean()), abs=1e-5)
        assert row.std_encoded == pytest.approx(float(plain.double().std(unbiased=False)), abs=1e-5)
        # and a reference that shares none of the library's batching, losses or gradient code
        hand = np.array([hand_encoded(encoder, m, f, a, encoder.source)
                         for m, f, a in zip(chosen["masked"], chosen["factual"], chosen["alternative"])])
        assert row.mean_encoded == pytest.approx(hand.mean(), abs=1e-5)
        assert row.std_encoded == pytest.approx(hand.std(), abs=1e-5)


def test_a_comparison_of_two_base_models_is_refused_by_the_stage(runs, tmp_path):
    config = config_for(runs, "comparison_topk")
    config["experiments"]["possessive"] = {**config["experiments"]["possessive"], "base_model": "other"}
    with pytest.raises(ValueError, match="must share their base model"):
        stages.comparison_topk(config, name="x", experiments=list(runs),
                               models=[r.path("seeds", "0", "model") for r in runs.values()],
                               csv=str(tmp_path / "a.csv"), plot=str(tmp_path / "a.png"))

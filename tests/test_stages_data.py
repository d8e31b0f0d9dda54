"""Data stages: the training table and neutral texts from the config, through the workflow's cut."""
import json

import pandas as pd
import pytest

from gradiend import stages
from gradiend import workflow_config as wfc
from gradiend.data.tables import UNIFIED_COLUMNS
from tests.stages_support import EXCLUDED, experiment_config

SHE_HE = [f"{name} said that {pronoun} would come back later today." for name, pronoun in
          [("Anna", "she"), ("John", "he")] * 15] + ["The weather was fine on Monday."] * 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_corpus):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(demo_corpus[:800]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def experiment(corpus, tmp_path_factory):
    # the data stages never load the model: any existing folder with a tokenizer file validates as base model
    (corpus.parent / "tokenizer.json").write_text("{}", encoding="utf-8")
    return experiment_config(corpus.parent, corpus, tmp_path_factory.mktemp("results"))


def test_training_table_and_summary(experiment, corpus, tmp_path):
    training, summary = tmp_path / "data" / "training.parquet", tmp_path / "data" / "summary.json"
    stages.create_training_data(wfc.stage_config(experiment, "create_training_data"), texts=str(corpus),
                                training=str(training), summary=str(summary))
    table = pd.read_parquet(training)
    assert list(table.columns[:len(UNIFIED_COLUMNS)]) == list(UNIFIED_COLUMNS)
    assert set(table["split"]) == {"train", "validation", "test"}
    assert set(table["factual_class"]) == {"F", "M"}
    assert (table["factual_class"] != table["alternative_class"]).all()
    assert dict(table.groupby("factual_class")["label"].first()) == {"F": 1, "M": -1}
    assert table.groupby("factual_class").size().to_dict() == {"F": 60, "M": 60}  # max_size_per_class (800 texts hold more)
    assert table["masked"].str.contains(r"\[MASK\]").all()
    facts = json.loads(summary.read_text())
    assert facts["target_classes"] == ["F", "M"]
    assert facts["rows"] == len(table)
    counted = table.groupby(["factual_class", "split"]).size()
    assert facts["rows_per_class_and_split"] == {c: {s: int(n) for (c2, s), n in counted.items() if c2 == c}
                                                 for c in ("F", "M")}
    assert set(facts["rows_per_class_and_split"]["F"]) == {"train", "validation", "test"}
    assert facts["creator"]["sentences"] == 800


def test_training_data_is_deterministic(experiment, corpus, tmp_path):
    cut = wfc.stage_config(experiment, "create_training_data")
    for name in ("a", "b"):
        stages.create_training_data(cut, texts=str(corpus), training=str(tmp_path / name / "t.parquet"),
                                    summary=str(tmp_path / name / "s.json"))
    assert (tmp_path / "a" / "t.parquet").read_bytes() == (tmp_path / "b" / "t.parquet").read_bytes()


def test_texts_from_the_config(experiment, tmp_path):
    cut = wfc.stage_config(experiment, "create_training_data")
    cut["data"]["source"] = {"texts": SHE_HE}
    cut["data"]["max_size_per_class"] = None
    stages.create_training_data(cut, texts=None, training=str(tmp_path / "t.parquet"),
                                summary=str(tmp_path / "s.json"))
    table = pd.read_parquet(tmp_path / "t.parquet")
    assert sorted(table["factual"].str.lower().unique()) == ["he", "she"]
    assert len(table) == 30


def test_missing_target_fails_before_writing(experiment, corpus, tmp_path):
    cut = wfc.stage_config(experiment, "create_training_data")
    cut["data"]["feature_targets"][0]["targets"] = ["she", "zzyzx"]
    with pytest.raises(ValueError, match="zzyzx"):
        stages.create_training_data(cut, texts=str(corpus), training=str(tmp_path / "t.parquet"),
                                    summary=str(tmp_path / "s.json"))
    assert not list(tmp_path.iterdir())


def test_demo_source_needs_the_corpus_file(experiment, tmp_path):
    cut = wfc.stage_config(experiment, "create_training_data")
    cut["data"]["source"] = "demo"
    with pytest.raises(ValueError, match="data.source"):
        stages.create_training_data(cut, texts=None, training=str(tmp_path / "t.parquet"),
                                    summary=str(tmp_path / "s.json"))


def test_neutral_texts_have_no_target_or_excluded_word(experiment, corpus, tmp_path):
    neutral = tmp_path / "neutral.parquet"
    cut = wfc.stage_config(experiment, "create_neutral_data")
    stages.create_neutral_data(cut, texts=str(corpus), neutral=str(neutral))
    frame = pd.read_parquet(neutral)
    assert list(frame.columns) == ["text"]
    assert len(frame) == 30  # max_size: the 800 texts hold more neutral ones
    words = {w.strip(".,;:!?\"'").lower() for text in frame["text"] for w in text.split()}
    assert not words & {"she", "he", *EXCLUDED}

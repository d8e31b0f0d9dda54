"""What the workflow hands the stages: the per-stage config cuts and the rewrite checks."""
import pytest

from gradiend import workflow_config as wfc
from gradiend.cells import class_feature_factor
from gradiend.schema_validation import ConfigError
from tests.stages_support import experiment_config


@pytest.fixture
def paths(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Anna said she was tired.\n", encoding="utf-8")
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")  # tmp_path stands in for a model folder
    return tmp_path, corpus


def test_rewrite_needs_its_feature_factor_in_the_grid(paths):
    root, corpus = paths
    with pytest.raises(ConfigError, match=r"rewrite`: 'F_weaken' needs feature factor -1"):
        experiment_config(root, corpus, root / "r", decoder={"feature_factors": [1.0]}, rewrite=["F", "F_weaken"])
    factual = experiment_config(root, corpus, root / "r", decoder={"feature_factors": [1.0]}, rewrite=["F_weaken"],
                                training={"source": "factual"})
    assert factual["decoder"]["feature_factors"] == [1.0]


@pytest.mark.parametrize("stage, absent", [
    ("evaluate_encoders", "source"), ("select_cell", "training"), ("rewrite_models", "source"),
    ("decoder_grid", "learning_rate"),
])
def test_cuts_leave_out_what_the_stage_does_not_read(paths, stage, absent):
    root, corpus = paths
    cut = wfc.stage_config(experiment_config(root, corpus, root / "r"), stage)
    flat = set(cut) | {k for v in cut.values() if isinstance(v, dict) for k in v}
    assert absent not in flat


def test_rewrite_factor_matches_the_class_feature_factors():
    assert class_feature_factor("alternative", 0, weaken=False) == 1.0
    assert class_feature_factor("alternative", 0, weaken=True) == -1.0
    assert class_feature_factor("factual", 1, weaken=False) == 1.0
    assert class_feature_factor("diff", 1, weaken=True) == -1.0

"""gradiend.cells: one owner for a decoder cell's name, the weaken suffix, the sign rule and the grid."""
import pytest

from pathlib import Path

from gradiend import cells
from gradiend import workflow_config as wfc
from gradiend.schema_validation import load_yaml
from gradiend.workflow_config import SCHEMA_PATH

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("lr, ff, name", [
    (100.0, 1.0, "lr~100_ff~1"), (0.005, -1.0, "lr~0.005_ff~-1"), (1e-05, 1, "lr~1e-05_ff~1"),
    (0.1, 0.5, "lr~0.1_ff~0.5"),
])
def test_cell_name_is_exact_and_round_trips(lr, ff, name):
    assert cells.cell_name(lr, ff) == name
    assert cells.parse_cell_name(name) == (float(lr), float(ff))
    assert "/" not in name and " " not in name


def test_every_default_grid_name_round_trips():
    for lr in cells.DEFAULT_LEARNING_RATES:
        for ff in (1.0, -1.0):
            assert cells.parse_cell_name(cells.cell_name(lr, ff)) == (lr, ff)


def test_parse_rejects_other_names():
    for bad in ("base", "lr~x_ff~1", "lr~1"):
        with pytest.raises(ValueError, match="not a decoder cell name"):
            cells.parse_cell_name(bad)


def test_default_grid_has_16_values_and_the_workflow_takes_it_from_here():
    assert cells.default_learning_rates() == [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005,
                                              0.002, 0.001]
    schema = load_yaml(SCHEMA_PATH)
    assert schema["$defs"]["decoder"]["properties"]["learning_rates"]["default"] is None  # defined once: here
    raw = load_yaml(REPO / "config" / "config.yaml")
    for exp in raw["experiments"].values():
        exp.setdefault("decoder", {}).pop("learning_rates", None)
    resolved = wfc.load_and_validate(raw)
    for exp in resolved["experiments"].values():
        assert exp["decoder"]["learning_rates"] == list(cells.DEFAULT_LEARNING_RATES)


@pytest.mark.parametrize("source, direction, strengthen, expected", [
    ("alternative", 1, True, 1.0), ("alternative", -1, True, -1.0), ("alternative", 1, False, -1.0),
    ("factual", 1, True, -1.0), ("diff", -1, True, 1.0), ("diff", -1, False, -1.0),
])
def test_sign_rule(source, direction, strengthen, expected):
    assert cells.feature_factor(source, direction, strengthen) == expected
    index = 0 if direction == 1 else 1
    assert cells.class_feature_factor(source, index, weaken=not strengthen) == expected


def test_model_with_gradiend_uses_the_same_sign_rule():
    from gradiend.model.with_gradiend import ModelWithGradiend

    class Probe:
        feature_class_encoding_direction = {"F": 1, "M": -1}

    for source in ("alternative", "factual", "diff"):
        Probe.source = source
        for cls, direction in (("F", 1), ("M", -1)):
            for strengthen in (True, False):
                got = ModelWithGradiend.feature_factor(Probe(), cls, strengthen)
                assert got == cells.feature_factor(source, direction, strengthen)


def test_rewrite_keys():
    assert cells.rewrite_key("F", weaken=True) == "F_weaken" and cells.rewrite_key("F", weaken=False) == "F"
    assert cells.split_rewrite_target("F_weaken") == ("F", True)
    assert cells.split_rewrite_target("F") == ("F", False)


def test_grid_cells_base_first():
    grid = cells.grid_cells([0.1, 1.0], [1.0, -1.0])
    assert list(grid) == ["base", "lr~0.1_ff~1", "lr~1_ff~1", "lr~0.1_ff~-1", "lr~1_ff~-1"]
    assert grid["base"] == (None, None)


def test_the_workflow_patterns_spell_the_same_names():
    import re

    for lr, ff in [(0.01, -1.0), (100.0, 1.0), (1e-05, 0.5)]:
        name = cells.cell_name(lr, ff)
        assert cells.cell_name_with_wildcard(ff).format(lr=cells.number_label(lr)) == name
        assert re.fullmatch(cells.NAME_PATTERN, name)
    assert re.fullmatch(cells.NAME_PATTERN, cells.BASE)
    for other in ("lr~1", "ff~1", "lr~1_ff~1/x", "basement"):
        assert not re.fullmatch(cells.NAME_PATTERN, other)

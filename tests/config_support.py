"""Shared helpers of the config tests: the embedded default as written, and the one problem a bad
value of it raises."""
from pathlib import Path

import pytest
import yaml

from gradiend import workflow_config as wfc
from gradiend.schema_validation import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
EXP = "experiments.gender_tiny_bert"


@pytest.fixture
def raw():
    """The embedded default config, as its YAML reads (a fresh copy per test)."""
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def bert(config):
    return config["experiments"]["gender_tiny_bert"]


def only_problem(config) -> str:
    with pytest.raises(ConfigError) as caught:
        wfc.load_and_validate(config)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]

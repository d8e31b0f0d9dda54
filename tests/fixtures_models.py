"""Session fixtures: the demo corpus and tiny offline models (random, and pre-trained on the corpus).

Random models are rebuilt per session in a temporary folder (seconds). Pre-trained models take tens
of seconds, so they are cached under ``$GRADIEND_TEST_CACHE`` (default ``~/.cache/gradiend-tests``)
in a folder keyed by the library version and a hash of the recipe and the demo source code, so a
changed recipe or builder never reuses a stale model.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

FIXTURE_CORPUS_SIZE = 2000
PRETRAIN_CORPUS_SIZE = 6000
# Steps: the pre-training defaults (early stop at the target accuracy); the code hash covers them.
PRETRAIN_RECIPES = {
    "masked": {"seed": 0, "corpus_size": PRETRAIN_CORPUS_SIZE, "corpus_seed": 0},
    "causal": {"seed": 0, "corpus_size": PRETRAIN_CORPUS_SIZE, "corpus_seed": 0},
}


def _cache_root() -> Path:
    return Path(os.environ.get("GRADIEND_TEST_CACHE", Path.home() / ".cache" / "gradiend-tests"))


def _recipe_key(kind: str) -> str:
    """Version + hash of the recipe and of the code that builds and trains the demo models."""
    import gradiend
    import gradiend.data.demo_corpus as corpus_module
    import gradiend.demo.models as models_module
    import gradiend.demo.pretrain as pretrain_module

    digest = hashlib.sha256(json.dumps(PRETRAIN_RECIPES[kind], sort_keys=True).encode())
    import gradiend.demo.evaluate as evaluate_module

    for module in (corpus_module, models_module, pretrain_module, evaluate_module):
        digest.update(Path(module.__file__).read_bytes())
    return f"{gradiend.__version__}-{kind}-{digest.hexdigest()[:16]}"


def _cached_pretrained(kind: str) -> Path:
    from gradiend.data.demo_corpus import generate_demo_corpus
    from gradiend.demo.pretrain import build_demo_model

    out_dir = _cache_root() / _recipe_key(kind)
    if not (out_dir / "pretraining.json").is_file():
        recipe = PRETRAIN_RECIPES[kind]
        corpus = generate_demo_corpus(recipe["corpus_size"], recipe["corpus_seed"])
        build_demo_model(kind, out_dir, corpus, seed=recipe["seed"])
    return out_dir


@pytest.fixture(scope="session")
def demo_corpus() -> list[str]:
    from gradiend.data.demo_corpus import generate_demo_corpus

    return generate_demo_corpus(FIXTURE_CORPUS_SIZE, seed=0)


@pytest.fixture(scope="session")
def tiny_masked_lm_dir(tmp_path_factory, demo_corpus) -> Path:
    from gradiend.demo.models import build_tiny_masked_lm

    return build_tiny_masked_lm(tmp_path_factory.mktemp("models") / "tiny-bert", demo_corpus, seed=0)


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory, demo_corpus) -> Path:
    from gradiend.demo.models import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "tiny-gpt2", demo_corpus, seed=0)


@pytest.fixture(scope="session")
def pretrained_masked_lm_dir() -> Path:
    """A tiny BERT pre-trained on the demo corpus (cached across test runs)."""
    return _cached_pretrained("masked")


@pytest.fixture(scope="session")
def pretrained_causal_lm_dir() -> Path:
    """A tiny GPT-2 pre-trained on the demo corpus (cached across test runs)."""
    return _cached_pretrained("causal")

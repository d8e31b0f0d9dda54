"""Shared test set-up: everything runs offline; fixtures for tiny models live in fixtures_models.py."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

pytest_plugins = ["tests.fixtures_models"]

# The resolved versions in every run's header: a green run says what it was green with.
REPORTED_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "datasets", "pandas", "numpy", "pyarrow",
                     "matplotlib", "spacy", "snakemake", "snakemake-executor-plugin-slurm", "pytest")


def pytest_report_header(config):
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return "resolved: " + ", ".join(f"{name} {version(name)}" for name in REPORTED_PACKAGES)

"""Public bias benchmarks for a (rewritten) language model: StereoSet, CrowS-Pairs and SEAT.

- :mod:`.formats` reads the *released* files (StereoSet's ``test.json``/``dev.json``, CrowS-Pairs'
  ``crows_pairs_anonymized.csv``, or their Hugging Face dataset versions) into plain items, and
  rejects a file in another format, with missing columns, or without items of a requested bias
  type, with one error naming the file;
- :mod:`.likelihood` scores sentences: pseudo-log-likelihood for masked LMs, log-likelihood for
  causal LMs;
- :mod:`.scores` turns those into StereoSet ``ss``/``lms``/``icat`` and the CrowS-Pairs score, each
  with a percentile bootstrap 95 % confidence interval;
- :mod:`.seat` runs SEAT tests (effect size, permutation p-value, bootstrap interval) on sentence
  embeddings.
"""
import importlib

_EXPORTS = {
    "BenchmarkFormatError": "formats", "StereoSetItem": "formats", "CrowsPair": "formats",
    "read_stereoset": "formats", "read_crows_pairs": "formats", "load_benchmarks": "formats",
    "SentenceScorer": "likelihood",
    "SeatTest": "seat", "read_seat": "seat", "seat_scores": "seat",
    "stereoset_scores": "scores", "crows_pairs_scores": "scores", "bootstrap_ci": "scores", "run_benchmarks": "scores",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    """Lazy exports: reading the formats (e.g. at workflow start-up) does not import torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

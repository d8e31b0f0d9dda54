"""Public bias benchmarks for a (rewritten) language model: StereoSet, CrowS-Pairs and SEAT.

:mod:`.formats` reads the released files, :mod:`.likelihood` scores sentences, :mod:`.scores`
turns the scores into benchmark results with bootstrap intervals, :mod:`.seat` runs SEAT tests.
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

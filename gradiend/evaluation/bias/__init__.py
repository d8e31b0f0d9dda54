"""Public bias benchmarks for a (rewritten) language model: StereoSet and CrowS-Pairs.

- :mod:`.formats` reads the *released* files (StereoSet's ``test.json``/``dev.json``, CrowS-Pairs'
  ``crows_pairs_anonymized.csv``, or their Hugging Face dataset versions) into plain items, and
  rejects a file in another format, with missing columns, or without items of a requested bias
  type, with one error naming the file;
- :mod:`.likelihood` scores sentences: pseudo-log-likelihood for masked LMs, log-likelihood for
  causal LMs;
- :mod:`.scores` turns those into StereoSet ``ss``/``lms``/``icat`` and the CrowS-Pairs score, each
  with a percentile bootstrap 95 % confidence interval.
"""
from gradiend.evaluation.bias.formats import (
    BenchmarkFormatError,
    CrowsPair,
    StereoSetItem,
    load_benchmarks,
    read_crows_pairs,
    read_stereoset,
)
from gradiend.evaluation.bias.likelihood import SentenceScorer
from gradiend.evaluation.bias.scores import bootstrap_ci, crows_pairs_scores, run_benchmarks, stereoset_scores

__all__ = [
    "BenchmarkFormatError", "StereoSetItem", "CrowsPair", "read_stereoset", "read_crows_pairs", "load_benchmarks",
    "SentenceScorer", "stereoset_scores", "crows_pairs_scores", "bootstrap_ci", "run_benchmarks",
]

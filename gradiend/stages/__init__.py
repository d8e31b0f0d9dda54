"""One function per workflow stage: read files, write files (docs/design.md §1).

The Snakemake scripts under ``workflow/scripts/`` call exactly one of these; a notebook can call
them too. Every stage has the signature ``(config, *, <inputs>, <outputs>, [wildcard values])``:

- ``config`` is the resolved experiment config (``gradiend.workflow_config.load_and_validate``), or
  the cut of it the workflow passes (``workflow_config.stage_config``: the same nesting, only the
  keys listed under "Config" in the stage's docstring). A stage reads no other key, so a change of
  any other key does not rerun it.
- inputs and outputs are paths (``str``); outputs are written atomically (``gradiend.util.io``),
  parent folders are created as needed, and a folder output is replaced as a whole. The same config
  and inputs give the same files on a CPU (wall-clock times live only in ``timing.json``).
- ``config["base_model_path"]`` is what to load the base model from: a local folder or a Hugging
  Face Hub id (``demo:<name>`` is already resolved to ``<results_dir>/_demo/models/<name>``);
  ``config["trust_remote_code"]`` is passed on to every loader. A stage loads it once.

Class conventions: ``config["data"]["target_classes"] = [c0, c1]``; c0 is the +1 class. A rewrite
target is a class id (strengthen it) or ``<class>_weaken`` (weaken it).

The modules and their jobs: docs/internals.md.
"""
from gradiend.stages.bias import benchmark_model, benchmark_table
from gradiend.stages.capability import capability_model
from gradiend.stages.comparison import comparison_cross_encoding, comparison_topk
from gradiend.stages.context import rule_context
from gradiend.stages.data import create_neutral_data, create_training_data, demo_corpus, demo_model
from gradiend.stages.decoder import decoder_grid, decoder_search, rewrite_models, select_cell
from gradiend.stages.encoder import evaluate_encoders, select_seed
from gradiend.stages.provenance import provenance
from gradiend.stages.report import report
from gradiend.stages.summary import summary
from gradiend.stages.training import pre_prune, train_seed

__all__ = [
    "rule_context", "demo_corpus", "demo_model", "create_training_data", "create_neutral_data", "pre_prune",
    "train_seed", "evaluate_encoders", "select_seed", "decoder_grid", "decoder_search", "select_cell",
    "rewrite_models", "provenance", "report", "summary", "benchmark_model", "benchmark_table", "comparison_topk",
    "comparison_cross_encoding",
]

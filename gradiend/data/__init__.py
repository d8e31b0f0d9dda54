"""Data creation and ingestion: feature-class filters, the sentence stream, masking, splits,
counterfactual alternatives, and the Parquet tables the trainer and the workflow read.
Import the submodules directly; nothing heavy is imported here.
"""

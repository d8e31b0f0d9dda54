"""Data creation and ingestion: feature-class filters, the sentence stream, masking, splits,
counterfactual alternatives, and the Parquet tables the trainer and the workflow read.

Modules (import what you need; nothing heavy is imported here):
``filter_config`` (TextFilterConfig, SpacyTagSpec), ``preprocess`` (TextPreprocessConfig,
preprocess_texts), ``base_loader`` (resolve_base_data), ``matching`` (whole-word / spaCy matching),
``creator`` (TextPredictionDataCreator), ``splitting``, ``alternatives``, ``tables`` (the unified
table, Parquet I/O, summary), ``ingest`` (TextPredictionConfig, load_training_table),
``rows`` (a split's training / evaluation rows), ``spacy_util``, ``demo_corpus``.
"""

"""Data: ingestion of raw texts into the unified training table, and the demo corpus."""

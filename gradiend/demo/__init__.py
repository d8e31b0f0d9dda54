"""Tiny offline demo models: random BERT / GPT-2 builders for tests, pre-training on the demo corpus."""

"""Tiny offline demo models: random BERT / GPT-2 builders for tests, one tiny model per Hugging Face LM
family, pre-training on the demo corpus."""

"""Which files make a model folder's tokenizer: one of them must hold the vocabulary.

Without any, ``transformers`` builds an empty fallback tokenizer that maps every word to the
unknown token, and training "runs" on nothing; the config check and the model loader refuse such
a folder instead. (Kept free of torch/transformers so the config check stays light.)
"""
from __future__ import annotations

from pathlib import Path

# tokenizer_config.json alone does not count: it holds no vocabulary.
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                         "tokenizer.model", "sentencepiece.model", "spm.model", "vocab.model", "source.spm",
                         "tiktoken.model", "bpe.codes")


def missing_tokenizer_message(folder: Path, name: str) -> str | None:
    """Why the model folder ``folder`` (written ``name`` by the user) has no usable tokenizer, or None."""
    if not folder.is_dir() or any((folder / f).is_file() for f in TOKENIZER_VOCAB_FILES):
        return None
    present = sorted(p.name for p in folder.iterdir())
    return (f"model folder {name!r} has no tokenizer files (none of tokenizer.json, vocab.txt, vocab.json, "
            f"*.model; it holds {present}): without them every word would become the unknown token. Save the "
            f"tokenizer into the folder (tokenizer.save_pretrained({str(folder)!r})) or copy its files there")

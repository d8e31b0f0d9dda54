"""Random-initialised tiny language models with their tokenizers, built offline in seconds.

Tests and the offline pipeline need real Hugging Face model folders without a hub. Every build is
byte-identical for a seed: the masked-LM vocabulary is written out from the corpus words
(``WordPieceTrainer`` differs per process), the byte-level BPE trainer is stable, and the weights
come from a seeded, forked torch RNG so the caller's random state is untouched.

Deliberate choices: the masked-LM tokenizer lower-cases (like ``bert-base-uncased``) and keeps whole
words; positions stay below 256 (models with few positions must work); dropout is 0 so gradients do
not depend on train/eval mode.
"""
from __future__ import annotations

from pathlib import Path

from gradiend.data.demo_corpus import DEMO_PRONOUNS, generate_demo_corpus
from gradiend.util.io import PathLike, atomic_dir, write_json

MASKED_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CAUSAL_EOS_TOKEN = "<|endoftext|>"
DEFAULT_CORPUS_SIZE = 2000
TINY_MAX_POSITIONS = 128
CAUSAL_VOCAB_SIZE = 1000
# Shapes of full-size random models for benchmarks, as build_tiny_masked_lm arguments
RANDOM_LIKE_SHAPES = {"bert-base": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072,
                                    "max_positions": 512, "vocab_size": 30522}}


def _corpus_or_default(corpus: list[str] | None, seed: int) -> list[str]:
    if corpus is None:
        return generate_demo_corpus(DEFAULT_CORPUS_SIZE, seed)
    if not corpus:
        raise ValueError("corpus is empty: a demo tokenizer needs at least one sentence")
    return list(corpus)


def _whole_word_backend(vocab: dict[str, int]):
    """A lower-casing BERT-style tokenizer whose vocabulary holds whole words only."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(token, vocab[token]) for token in ("[CLS]", "[SEP]")],
    )
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def _whole_word_vocab(corpus: list[str], size: int | None = None) -> dict[str, int]:
    """Special tokens, then every word of ``corpus`` (as the tokenizer splits it), sorted; ``size``
    pads the vocabulary with ``[unusedN]`` entries, as the real BERT vocabularies do."""
    splitter = _whole_word_backend({token: i for i, token in enumerate(MASKED_SPECIAL_TOKENS)})
    words = set(DEMO_PRONOUNS)
    for text in corpus:
        normalized = splitter.normalizer.normalize_str(text)
        words.update(word for word, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized))
    tokens = list(MASKED_SPECIAL_TOKENS) + sorted(words - set(MASKED_SPECIAL_TOKENS))
    if size is not None:
        if size < len(tokens):
            raise ValueError(f"vocabulary size {size} is smaller than the corpus needs ({len(tokens)})")
        tokens += [f"[unused{i}]" for i in range(size - len(tokens))]
    return {token: i for i, token in enumerate(tokens)}


def _masked_tokenizer(corpus: list[str], max_length: int, size: int | None = None):
    """BERT's default special tokens are MASKED_SPECIAL_TOKENS."""
    from transformers import BertTokenizerFast

    backend = _whole_word_backend(_whole_word_vocab(corpus, size))
    return BertTokenizerFast(tokenizer_object=backend, model_max_length=max_length)


def _causal_tokenizer(corpus: list[str], max_length: int, vocab_size: int = CAUSAL_VOCAB_SIZE):
    """A GPT-2-style byte-level BPE tokenizer trained on ``corpus``; every special token (GPT-2's
    default) and the pad token is the end of text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[CAUSAL_EOS_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(corpus, trainer=trainer)
    return GPT2TokenizerFast(tokenizer_object=backend, pad_token=CAUSAL_EOS_TOKEN,
                             model_max_length=max_length)


def _seeded_model(model_class, config, seed: int):
    """Instantiate ``model_class(config)`` with weights drawn from ``seed``, leaving global RNG as is."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config).eval()


def save_model_folder(model, tokenizer, out_dir: PathLike, json_files: dict | None = None) -> Path:
    """Write a Hugging Face model folder (plus ``{file name: content}`` JSON files) atomically."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, content in (json_files or {}).items():
            write_json(tmp / name, content)
    return Path(out_dir)


def build_tiny_masked_lm(
    out_dir: PathLike,
    corpus: list[str] | None = None,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 256,
    max_positions: int = TINY_MAX_POSITIONS,
    vocab_size: int | None = None,
) -> Path:
    """Write a random BERT masked LM with a whole-word tokenizer over ``corpus`` to ``out_dir``;
    ``vocab_size`` pads the vocabulary with ``[unusedN]`` tokens (None: the corpus words only)."""
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = _masked_tokenizer(_corpus_or_default(corpus, seed), max_positions, vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_positions, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        pad_token_id=tokenizer.pad_token_id,
    )
    return save_model_folder(_seeded_model(BertForMaskedLM, config, seed), tokenizer, out_dir)


def build_tiny_causal_lm(
    out_dir: PathLike,
    corpus: list[str] | None = None,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 256,
    max_positions: int = TINY_MAX_POSITIONS,
    vocab_size: int = CAUSAL_VOCAB_SIZE,
) -> Path:
    """Write a random GPT-2 causal LM with a byte-level BPE tokenizer trained on ``corpus``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _causal_tokenizer(_corpus_or_default(corpus, seed), max_positions, vocab_size)
    eos_id = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=max_positions, n_embd=hidden_size, n_layer=num_layers,
        n_head=num_heads, n_inner=intermediate_size,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
    )
    return save_model_folder(_seeded_model(GPT2LMHeadModel, config, seed), tokenizer, out_dir)


def build_random_like(
    config_name: str, out_dir: PathLike, *, corpus: list[str] | None = None, seed: int = 0
) -> Path:
    """Write a random masked LM of a real model's shape (e.g. ``"bert-base"``) for benchmarks; its
    vocabulary is padded to the real size, so embedding and output layers have their full-size cost."""
    if config_name not in RANDOM_LIKE_SHAPES:
        raise ValueError(f"unknown config_name {config_name!r}; known: {sorted(RANDOM_LIKE_SHAPES)}")
    return build_tiny_masked_lm(out_dir, corpus, seed, **RANDOM_LIKE_SHAPES[config_name])

"""Tiny random models of many Hugging Face language-model families, built offline in a second.

GRADIEND reads a base model's parameters by name, scores it through its output head and rewrites
it in place; each family names, ties and scales those parts its own way (XLM-RoBERTa registers its
tied ``lm_head`` before the backbone, Gemma 2 soft-caps its logits, OPT offsets its positions, ...).
These builders give every family a 2-layer model a few dozen units wide, so a test can run the whole
library path on each in about a second. Masked LMs get the demo's whole-word WordPiece tokenizer,
causal LMs its byte-level BPE tokenizer (:mod:`gradiend.demo.models`); the model is made with the
matching Auto class from a config of the family's ``model_type``, so a folder reloads with
``AutoModelForMaskedLM`` / ``AutoModelForCausalLM``. Weights come from a seeded, forked RNG.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gradiend.demo.models import (_causal_tokenizer, _corpus_or_default, _masked_tokenizer, _seeded_model,
                                  save_model_folder)
from gradiend.util.io import PathLike

HIDDEN = 32
LAYERS = 2
HEADS = 2
FFN = 64
MAX_LENGTH = 64  # tokenizer limit; every model has at least this many positions
CAUSAL_VOCAB = 300


@dataclass(frozen=True)
class Family:
    """One model family: ``model_type`` for ``AutoConfig.for_model``, masked or causal LM, and the
    config keys of its tiny shape (besides vocabulary and special-token ids)."""

    model_type: str
    masked: bool
    config: dict = field(default_factory=dict)


_BERT_LIKE = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "intermediate_size": FFN, "max_position_embeddings": MAX_LENGTH,
              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# RoBERTa-style position ids start after the padding index: two more positions than tokens
_ROBERTA_LIKE = {**_BERT_LIKE, "max_position_embeddings": MAX_LENGTH + 2}
_DECODER = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": FFN, "max_position_embeddings": MAX_LENGTH}
_LLAMA_LIKE = {**_DECODER, "num_key_value_heads": 1, "head_dim": HIDDEN // HEADS, "attention_dropout": 0.0}

FAMILIES: dict[str, Family] = {
    "bert": Family("bert", True, _BERT_LIKE),
    "roberta": Family("roberta", True, _ROBERTA_LIKE),
    "xlm-roberta": Family("xlm-roberta", True, _ROBERTA_LIKE),
    "distilbert": Family("distilbert", True, {"dim": HIDDEN, "n_layers": LAYERS, "n_heads": HEADS, "hidden_dim": FFN,
                                              "max_position_embeddings": MAX_LENGTH, "dropout": 0.0,
                                              "attention_dropout": 0.0}),
    "electra": Family("electra", True, {**_BERT_LIKE, "embedding_size": 16}),
    "deberta-v2": Family("deberta-v2", True, {**_BERT_LIKE, "relative_attention": True, "position_buckets": 16,
                                              "pos_att_type": ["p2c", "c2p"], "max_relative_positions": -1}),
    "modernbert": Family("modernbert", True, {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                                              "num_attention_heads": HEADS, "intermediate_size": FFN,
                                              "max_position_embeddings": MAX_LENGTH, "local_attention": 16,
                                              "global_attn_every_n_layers": 2, "embedding_dropout": 0.0,
                                              "attention_dropout": 0.0, "mlp_dropout": 0.0}),
    "albert": Family("albert", True, {**_BERT_LIKE, "embedding_size": 16, "classifier_dropout_prob": 0.0}),
    "gpt2": Family("gpt2", False, {"n_embd": HIDDEN, "n_layer": LAYERS, "n_head": HEADS, "n_inner": FFN,
                                   "n_positions": MAX_LENGTH, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                                   "attn_pdrop": 0.0}),
    "gpt-neox": Family("gpt_neox", False, {**_DECODER, "rotary_pct": 0.5, "hidden_dropout": 0.0,
                                           "attention_dropout": 0.0}),
    "llama": Family("llama", False, _LLAMA_LIKE),
    "qwen2": Family("qwen2", False, _LLAMA_LIKE),
    "qwen3": Family("qwen3", False, _LLAMA_LIKE),
    "mistral": Family("mistral", False, _LLAMA_LIKE),
    "gemma": Family("gemma", False, _LLAMA_LIKE),
    "gemma2": Family("gemma2", False, {**_LLAMA_LIKE, "sliding_window": 16}),
    "gemma3": Family("gemma3_text", False, {**_LLAMA_LIKE, "sliding_window": 16}),
    "phi": Family("phi", False, {**_DECODER, "partial_rotary_factor": 0.5, "resid_pdrop": 0.0,
                                 "embd_pdrop": 0.0, "attention_dropout": 0.0}),
    "phi3": Family("phi3", False, {**_DECODER, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attention_dropout": 0.0}),
    "opt": Family("opt", False, {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                                 "ffn_dim": FFN, "word_embed_proj_dim": HIDDEN, "max_position_embeddings": MAX_LENGTH,
                                 "dropout": 0.0, "attention_dropout": 0.0}),
    "falcon": Family("falcon", False, {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                                       "num_attention_heads": HEADS, "max_position_embeddings": MAX_LENGTH,
                                       "hidden_dropout": 0.0, "attention_dropout": 0.0}),
}


def build_family_model(family: str, out_dir: PathLike, corpus: list[str] | None = None, seed: int = 0) -> Path:
    """Write a random tiny model of ``family`` (a key of :data:`FAMILIES`) with its tokenizer to ``out_dir``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    spec = FAMILIES[family]
    corpus = _corpus_or_default(corpus, seed)
    if spec.masked:
        tokenizer = _masked_tokenizer(corpus, MAX_LENGTH)
        special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.cls_token_id,
                   "eos_token_id": tokenizer.sep_token_id, "cls_token_id": tokenizer.cls_token_id,
                   "sep_token_id": tokenizer.sep_token_id}
    else:
        tokenizer = _causal_tokenizer(corpus, MAX_LENGTH, CAUSAL_VOCAB)
        eos = tokenizer.eos_token_id
        special = {"pad_token_id": eos, "bos_token_id": eos, "eos_token_id": eos}
    config = AutoConfig.for_model(spec.model_type, vocab_size=len(tokenizer), **special, **spec.config)
    auto_class = AutoModelForMaskedLM if spec.masked else AutoModelForCausalLM
    model = _seeded_model(auto_class.from_config, config, seed)
    return save_model_folder(model, tokenizer, out_dir)

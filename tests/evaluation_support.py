"""Tiny random BERT / GPT-2 models with offline tokenizers, for the evaluation tests.

Built in memory in well under a second; the vocabulary is written out explicitly (the WordPiece
trainer is not deterministic across processes, docs/design.md §3).
"""
from __future__ import annotations

import torch

WORDS = (
    "the a chef doctor nurse tasted soup then added pepper said that was tired happy went home "
    "she he they her his him their them it and to of in on with book car house city day night "
    "read wrote saw liked called asked maria john anna james emma david sarah paul . , !"
).split()

SENTENCES = [
    "the chef tasted the soup , then she added pepper .",
    "the doctor said that he was tired .",
    "maria went home and she read a book .",
    "john called the nurse and he was happy .",
    "the city was happy in the night .",
    "a car went to the house on the day .",
]


def bert_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "##s"]
    words = list(dict.fromkeys(WORDS + [w.capitalize() for w in WORDS if w.isalpha()]))
    vocab = {token: i for i, token in enumerate(specials + words)}
    core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=False)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
    )


def gpt2_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = SENTENCES + [" ".join(WORDS)] * 3 + [s.capitalize() for s in SENTENCES]
    core.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=64,
    )


def tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = bert_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, attn_implementation="eager",
    )
    return BertForMaskedLM(config).eval(), tokenizer


def tiny_gpt2(seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = gpt2_tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64,
        attn_implementation="eager", bos_token_id=0, eos_token_id=0,
    )
    return GPT2LMHeadModel(config).eval(), tokenizer


def demo_tables(corpus: list[str], per_class: int = 60, neutral: int = 20):
    """A she-vs-he unified table (with ``label``) and neutral texts, from the demo corpus."""
    from gradiend.data.creator import TextPredictionDataCreator
    from gradiend.data.filter_config import TextFilterConfig
    from gradiend.data.ingest import load_training_table

    creator = TextPredictionDataCreator(
        base_data=corpus, feature_targets=[TextFilterConfig(targets=["she"], id="she"),
                                           TextFilterConfig(targets=["he"], id="he")], seed=0)
    per_class_data = creator.generate_training_data(max_size_per_class=per_class)
    table = load_training_table(data=per_class_data, target_classes=["she", "he"], random_state=0)
    neutral_data = creator.generate_neutral_data(max_size=neutral, additional_excluded_words=["her", "his", "him"])
    return table, neutral_data


def gradiend_parts(model_dir, table, neutral, seed: int = 0, **options):
    """EvaluationParts over a fresh (seeded) she-vs-he GRADIEND on the model in ``model_dir``."""
    from gradiend.evaluation.context import EvaluationParts
    from gradiend.model.with_gradiend import ModelWithGradiend

    torch.manual_seed(seed)
    model = ModelWithGradiend.from_pretrained(str(model_dir), source="alternative",
                                              feature_class_encoding_direction={"she": 1, "he": -1})
    return EvaluationParts(model, table, neutral, **options)

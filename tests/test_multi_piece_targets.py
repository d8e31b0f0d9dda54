"""A target word of two sub-tokens trains and scores: "she" is "sh" + "##e", "he" one token.

The masked LM scores each target on its own input (two masks for "she", one for "he"), as the
original package prepares factual and alternative separately; the probability of a word is the
product over its pieces. Checked here against plain Hugging Face forwards written out in the test.
"""
import pytest
import torch

from gradiend.demo.models import _seeded_model, _whole_word_backend, _whole_word_vocab, save_model_folder
from gradiend.training.arguments import TrainingArguments
from gradiend.training.trainer import TextPredictionTrainer
from tests.objectives_support import hand_encoded
from tests.training_support import she_he_table

LEARNING_RATE = 1.0  # of the rewrite scored below: large enough to move the probabilities


@pytest.fixture(scope="module")
def split_she_dir(tmp_path_factory, demo_corpus):
    """A random tiny BERT whose whole-word vocabulary lacks "she" but has "sh" and "##e"."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    tokens = [t for t in _whole_word_vocab(demo_corpus) if t != "she"] + ["sh", "##e"]
    tokenizer = BertTokenizerFast(tokenizer_object=_whole_word_backend({t: i for i, t in enumerate(tokens)}),
                                  model_max_length=64)
    assert tokenizer.tokenize("Then she smiled.") == ["then", "sh", "##e", "smiled", "."]
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id)
    model = _seeded_model(BertForMaskedLM, config, 0)
    return save_model_folder(model, tokenizer, tmp_path_factory.mktemp("split-she") / "model")


@pytest.fixture(scope="module")
def trainer(split_she_dir, demo_corpus, tmp_path_factory):
    table = she_he_table(demo_corpus, max_per_class=100)
    table = table[table["masked"].str.count(r"\[MASK\]") == 1].reset_index(drop=True)  # one mask: all pieces
    args = TrainingArguments(train_batch_size=4, max_steps=30, eval_steps=30, learning_rate=1e-3, max_seeds=1,
                             encoder_eval_max_size=16, experiment_dir=str(tmp_path_factory.mktemp("run")))
    trainer = TextPredictionTrainer(str(split_she_dir), data=table, args=args, target_classes=["she", "he"],
                                    progress=False)
    trainer.train()
    return trainer


def test_the_encoder_separates_a_two_piece_class_and_encodes_each_row_exactly(trainer):
    metrics = trainer.evaluate_encoder(split="test", return_df=True)
    assert abs(metrics["correlation"]) > 0.95
    means = metrics["mean_by_feature_class"]
    assert means["she"] > 0.5 and means["he"] < -0.5  # she = +1 after the sign normalisation
    rows = metrics["encoder_df"]
    rows = rows[rows["type"] == "training"].head(6)
    assert set(rows["factual_class"]) == {"she", "he"}
    model = trainer.model_with_gradiend
    hand = [hand_encoded(model, m, f, a, model.source) for m, f, a in zip(rows["masked"], rows["factual"], rows["alternative"])]
    assert rows["encoded"].tolist() == pytest.approx(hand, rel=1e-4, abs=1e-6)


def _plain_probability(model, tokenizer, masked: str, word: str) -> float:
    """P(word at the mask): the product over its pieces, one mask per piece, in a plain loop."""
    pieces = tokenizer.tokenize(word)
    inputs = tokenizer(masked.replace("[MASK]", tokenizer.mask_token * len(pieces)), return_tensors="pt")
    masks = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
    with torch.no_grad():
        logits = model(**inputs).logits[0].double()
    probability = 1.0
    for position, piece in zip(masks, tokenizer.convert_tokens_to_ids(pieces)):
        probability *= float(torch.softmax(logits[position], dim=-1)[piece])
    return probability


def _plain_class_probabilities(model, tokenizer, rows) -> dict:
    """``{dataset: {class: mean P}}`` for the one-word classes she / he over ``rows``."""
    return {dataset: {word: sum(_plain_probability(model, tokenizer, m, word) for m in group["masked"]) / len(group)
                      for word in ("she", "he")}
            for dataset, group in rows.groupby("factual_class")}


def test_decoder_probability_of_a_two_piece_word_is_the_product_over_its_pieces(trainer):
    model = trainer.model_with_gradiend
    tokenizer = model.tokenizer
    assert len(tokenizer.tokenize("she")) == 2 and len(tokenizer.tokenize("he")) == 1
    factor = model.feature_factor("she")
    results = trainer.evaluate_decoder(lrs=[LEARNING_RATE], feature_factors=[factor], target_class="she", plot=True)
    rows = trainer.evaluator.decoder.split_rows("test")
    base = _plain_class_probabilities(model.base_model, tokenizer, rows)
    rewritten = _plain_class_probabilities(model.rewrite_base_model(LEARNING_RATE, factor), tokenizer, rows)
    cells = results["grid"]
    [cell_id] = [key for key in cells if key != "base"]
    for dataset in ("she", "he"):
        for word in ("she", "he"):
            assert cells["base"]["probs_by_dataset"][dataset][word] == pytest.approx(base[dataset][word], rel=1e-5)
            assert cells[cell_id]["probs_by_dataset"][dataset][word] == pytest.approx(rewritten[dataset][word], rel=1e-5)
    # strengthening "she" moved the he rows toward P(sh ##e), away from P(he)
    assert rewritten["he"]["she"] > 2 * base["he"]["she"] and rewritten["he"]["he"] < base["he"]["he"]

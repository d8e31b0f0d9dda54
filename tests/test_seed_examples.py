"""Every example of the user's API documents (docs/api.md), run as written.

Adapted only where a hub id must become local: ``"bert-base-uncased"`` is the tiny offline BERT,
``"path/to/gradiend/model"`` a checkpoint trained here, the hub datasets of the TextPredictionConfig
example are local Parquet files, and the undefined ``training_data`` / ``neutral_data`` of the trainer
example come from the demo corpus (classes named ``masc_nom`` / ``fem_nom`` so that the example's
``target_class="masc_nom"`` exists). For speed the trainer example trains one seed instead of the
default three.
"""
import copy

import numpy as np
import pandas as pd
import pytest
import torch

from gradiend import (DecoderEvaluator, EncoderEvaluator, Evaluator, GradiendModel, ModelWithGradiend,
                      ParamMappedGradiendModel, PostPruneConfig, PrePruneConfig, TextFilterConfig,
                      TextModelWithGradiend, TextPredictionConfig, TextPredictionDataCreator,
                      TextPredictionTrainer, TextPreprocessConfig, TrainingArguments)

NON_SUMMARY = {"grid", "non_finite_cells", "plot_path"}


@pytest.fixture(scope="module")
def example_data(demo_corpus):
    """``training_data`` / ``neutral_data`` of the trainer example (he = masc_nom, she = fem_nom)."""
    creator = TextPredictionDataCreator(base_data=demo_corpus, feature_targets=[
        TextFilterConfig(targets=["he"], id="masc_nom"), TextFilterConfig(targets=["she"], id="fem_nom")])
    return (creator.generate_training_data(max_size_per_class=30),
            creator.generate_neutral_data(max_size=12, additional_excluded_words=["her", "his", "him"]))


@pytest.fixture(scope="module")
def trained(tiny_masked_lm_dir, example_data):
    """The TextPredictionTrainer example, up to train()."""
    training_data, neutral_data = example_data
    args = TrainingArguments(
        train_batch_size=4,
        max_steps=100,
        learning_rate=1e-4,
    )
    args.max_seeds = 1  # speed only: the documented default trains 3 seeds (minutes on a loaded 2-core machine)
    trainer = TextPredictionTrainer(
        model=str(tiny_masked_lm_dir),  # "bert-base-uncased"
        data=training_data,
        eval_neutral_data=neutral_data,
        args=args,
    )
    trainer.train()
    return trainer


# ----------------------------------------------------------------------------- data creation
def test_data_creation_example():
    creator = TextPredictionDataCreator(
        base_data=["The chef tasted the soup, then he added pepper."],
        feature_targets=[
            TextFilterConfig(targets=["he", "she", "it"], id="3SG"),
            TextFilterConfig(targets=["they"], id="3PL"),
        ],
    )
    with pytest.warns(UserWarning, match="never occurs"):  # she, it, they: warned, not refused
        training = creator.generate_training_data(max_size_per_class=10)
    with pytest.warns(UserWarning, match="no neutral sentence"):
        neutral = creator.generate_neutral_data(max_size=15)
    assert list(training) == ["3SG", "3PL"]
    assert training["3SG"][["masked", "factual", "split"]].to_dict("records") == [
        {"masked": "The chef tasted the soup, then [MASK] added pepper.", "factual": "he", "split": "train"}]
    assert training["3PL"].empty and neutral.empty and list(neutral.columns) == ["text"]


def test_text_filter_config_examples():
    config = TextFilterConfig(targets=["he", "she"], id="3SG")
    assert (config.targets, config.id, config.spacy_tags) == (["he", "she"], "3SG", None)
    config = TextFilterConfig(
        targets=["der"],
        spacy_tags={"pos": "DET", "Case": "Nom", "Gender": "Masc"},
        id="masc_nom"
    )
    assert config.spacy_tags == {"pos": "DET", "Case": "Nom", "Gender": "Masc"} and config.needs_spacy


def test_text_preprocess_config_documented_defaults_and_filters():
    config = TextPreprocessConfig()
    assert (config.split_to_sentences, config.min_chars, config.max_chars, config.exclude_chars,
            config.custom_filter) == (False, None, None, None, None)
    texts = ["He came. She went home early today.", "Short.", "They said: #no."]
    assert sorted(TextPredictionDataCreator(base_data=texts).sentences()) == sorted(texts)  # used as-is (shuffled)
    preprocess = TextPreprocessConfig(split_to_sentences=True, min_chars=8, max_chars=30, exclude_chars="#",
                                      custom_filter=lambda s: not s.startswith("They"))
    kept = TextPredictionDataCreator(base_data=texts, preprocess=preprocess).sentences()
    assert sorted(kept) == ["He came.", "She went home early today."]


# ----------------------------------------------------------------------------- training and evaluation
def test_training_arguments_example(trained):
    args = TrainingArguments(
        train_batch_size=8,
        max_steps=200,
        learning_rate=1e-4,
        eval_steps=20,
        max_seeds=3,  # Train 3 seeds and pick best
        pre_prune_config=PrePruneConfig(keep_top_k=1000),
    )
    assert (args.train_batch_size, args.max_steps, args.learning_rate, args.eval_steps, args.max_seeds) == (
        8, 200, 1e-4, 20, 3)
    assert args.pre_prune_config.topk == 1000 and args.pre_prune_config.importance_metric == "gradient_norm"
    trainer = TextPredictionTrainer(model=trained.model, data=trained.config.data, args=args)
    assert trainer.compute_pre_prune_mask().n_kept == 1000  # keep_top_k entries survive pre-pruning


def test_trainer_example(trained, tmp_path):
    trainer = trained
    # Evaluate
    enc_result = trainer.evaluate_encoder(plot=True)
    dec_result = trainer.evaluate_decoder()
    changed_model = trainer.rewrite_base_model(decoder_results=dec_result, target_class="masc_nom")  # strengthen

    assert enc_result["figure"] is not None
    rows = trainer.evaluate_encoder(return_df=True)["encoder_df"]
    training_rows = rows[rows["type"] == "training"]
    expected = np.corrcoef(training_rows["encoded"].astype(float), training_rows["label"].astype(float))[0, 1]
    assert enc_result["correlation"] == pytest.approx(expected, abs=1e-9)  # Pearson over the encoded rows
    assert {k for k in dec_result if k not in NON_SUMMARY} == {"masc_nom", "fem_nom"}  # strengthen keys only
    weaken = trainer.evaluate_decoder(increase_target_probabilities=False)
    assert {k for k in weaken if k not in NON_SUMMARY} == {"masc_nom_weaken", "fem_nom_weaken"}
    weakened = trainer.rewrite_base_model(decoder_results=weaken, target_class="masc_nom",
                                          increase_target_probabilities=False)
    mwg = trainer.model_with_gradiend
    for model, entry in ((changed_model, dec_result["masc_nom"]), (weakened, weaken["masc_nom_weaken"])):
        expected = mwg.rewrite_base_model(entry["learning_rate"], entry["feature_factor"])
        assert all(torch.equal(p, dict(expected.named_parameters())[n]) for n, p in model.named_parameters())
    assert dec_result["masc_nom"]["feature_factor"] == -weaken["masc_nom_weaken"]["feature_factor"]
    assert trainer.plot_training_convergence() is not None
    assert isinstance(trainer.evaluator, Evaluator)  # "already has an Evaluator instance"


def test_text_prediction_config_example(example_data, tmp_path):
    training_data, neutral_data = example_data
    frames = [f.assign(factual_class=c) for c, f in training_data.items()]
    pd.concat(frames)[["masked", "factual", "factual_class", "split"]].to_parquet(tmp_path / "articles.parquet")
    neutral_data.to_parquet(tmp_path / "neutral.parquet")
    config = TextPredictionConfig(
        data=str(tmp_path / "articles.parquet"),  # "aieng-lab/de-gender-case-articles"
        target_classes=["masc_nom", "fem_nom"],
        masked_col="masked",
        split_col="split",
        eval_neutral_data=str(tmp_path / "neutral.parquet"),  # "aieng-lab/wortschatz-leipzig-de-grammar-neutral"
    )
    trainer = TextPredictionTrainer(model="unused", config=config)
    table = trainer.training_table
    assert trainer.target_classes == ("masc_nom", "fem_nom")
    assert dict(zip(table["factual_class"], table["label"])) == {"masc_nom": 1, "fem_nom": -1}
    assert list(trainer.eval_neutral_data["text"]) == list(neutral_data["text"])


# ----------------------------------------------------------------------------- model classes
def test_gradiend_model_key_methods(tmp_path):
    torch.manual_seed(0)
    model = GradiendModel(6)
    x = torch.randn(6)
    latent = model.forward(x)  # Encode gradients to latent space
    assert latent.shape == (1,) and torch.equal(latent, model.forward_encoder(x))
    decoded = model.forward_decoder(latent)  # Decode from latent space to gradient space
    torch.testing.assert_close(decoded, model.decoder.weight[:, 0] * latent + model.decoder.bias)
    model.save_pretrained(tmp_path / "g")
    loaded = GradiendModel.from_pretrained(tmp_path / "g")
    assert torch.equal(loaded(x), latent) and torch.equal(loaded.forward_decoder(latent), decoded)


def test_param_mapped_gradient_dicts():
    torch.manual_seed(0)
    model = ParamMappedGradiendModel({"w": (2, 3), "b": (2,)})
    grads = {"w": torch.randn(2, 3), "b": torch.randn(2)}
    flat = torch.cat([grads["w"].reshape(-1), grads["b"]])
    assert torch.equal(model.flatten(grads), flat) and torch.equal(model(grads), model(flat))
    assert all(torch.equal(model.unflatten(flat)[k], v) for k, v in grads.items())


def test_model_with_gradiend_example(trained, tiny_masked_lm_dir, tmp_path):
    trained.model_with_gradiend.save_pretrained(tmp_path / "gradiend")
    model = ModelWithGradiend.from_pretrained(
        base_model=str(tiny_masked_lm_dir),  # "bert-base-uncased"
        gradiend_model=str(tmp_path / "gradiend"),  # "path/to/gradiend/model"
    )
    assert type(model) is TextModelWithGradiend
    # a gradient dict: every parameter of the base model (the GRADIEND maps only the backbone)
    base = copy.deepcopy(model.base_model).requires_grad_(True)
    batch = model.prepare(["The chef tasted the soup, then [MASK] added pepper."], ["he"])
    base(**batch.inputs).logits[0, batch.position[0], batch.factual_ids[0]].backward()
    gradient_dict = {name: p.grad for name, p in base.named_parameters() if p.grad is not None}
    assert set(model.gradiend.param_map) < set(gradient_dict)

    # Encode a gradient
    feature_value = model.encode(gradient_dict)
    # Rewrite the base model
    modified_model = model.rewrite_base_model(
        learning_rate=1e-4,
        feature_factor=1.0,
        part='decoder'
    )

    assert torch.equal(feature_value, model.gradiend.forward_encoder(model.gradiend.flatten(gradient_dict)))
    update = model.gradiend.unflatten(model.gradiend.forward_decoder(1.0).detach())
    original = dict(model.base_model.named_parameters())
    for name, param in modified_model.named_parameters():
        expected = original[name] + 1e-4 * update[name] if name in update else original[name]
        assert torch.equal(param, expected), name


def test_evaluators_key_outputs(trained):
    parts = trained.evaluation_parts()
    encoder = EncoderEvaluator(parts).evaluate()
    assert {"correlation", "mean_by_class"} <= set(encoder)
    decoder = DecoderEvaluator(parts).evaluate_decoder(lrs=[1e-3])
    grid_keys = set(decoder["grid"])
    assert "base" in grid_keys and all("lms" in cell for cell in decoder["grid"].values())
    assert {"learning_rate", "feature_factor", "lms", "value"} <= set(decoder["masc_nom"])


def test_pruning_configs():
    assert PrePruneConfig(keep_top_k=1000).topk == 1000
    post = PostPruneConfig(keep_top_k=100, importance_metric="weight_magnitude")
    assert (post.topk, post.part) == (100, "decoder-weight")


# ----------------------------------------------------------------------------- the ModelWithGradiend reference
DOCUMENTED_METHODS = [
    "__len__", "__str__", "_create_gradiend", "_ensure_gradiend_param_map_spec", "_get_device_config", "_load_model",
    "_post_init_from_pretrained", "_resolve_device_config", "_save_model", "cpu", "create_gradients", "cuda",
    "encode", "from_pretrained", "get_enhancer_mask", "get_topk_weights", "get_weight_importance",
    "invert_encoding", "parameters", "prune_gradiend", "pruned_length", "rewrite_base_model", "save_pretrained",
    "set_feature_class_encoding_direction", "to", "unpruned_length", "with_original_base_model",
]


def test_model_with_gradiend_reference_names_and_signatures():
    import inspect
    from abc import ABC

    from torch import nn

    assert issubclass(ModelWithGradiend, nn.Module) and issubclass(ModelWithGradiend, ABC)
    assert [m for m in DOCUMENTED_METHODS if not hasattr(ModelWithGradiend, m)] == []
    assert ModelWithGradiend.__abstractmethods__ == {"create_gradients", "_load_model", "_save_model"}
    for name in ("_create_gradiend", "_get_device_config", "_resolve_device_config", "_load_model", "from_pretrained"):
        assert isinstance(inspect.getattr_static(ModelWithGradiend, name), classmethod), name
    params = inspect.signature(ModelWithGradiend.from_pretrained.__func__)
    loader = inspect.signature(__import__("gradiend.model.with_gradiend_io", fromlist=["x"]).load_model_with_gradiend)
    assert "load_directory" in params.parameters
    assert loader.parameters["require_gradiend_model"].default is False
    assert loader.parameters["feature_definition"].default is None
    prune = inspect.signature(ModelWithGradiend.prune_gradiend).parameters
    assert {k: v.default for k, v in prune.items() if k != "self"} == {
        "topk": None, "threshold": None, "mask": None, "part": "decoder-weight", "importance": None,
        "inplace": True, "return_mask": False}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for k, p in prune.items() if k != "self")
    topk = inspect.signature(ModelWithGradiend.get_topk_weights).parameters
    assert (topk["part"].default, topk["topk"].default) == ("decoder-weight", 1000)
    assert inspect.signature(ModelWithGradiend.get_weight_importance).parameters["part"].default == "decoder-weight"


def test_model_with_gradiend_reference_behaviour(tiny_masked_lm_dir, tmp_path):
    torch.manual_seed(0)
    model = ModelWithGradiend.from_pretrained(str(tiny_masked_lm_dir), require_gradiend_model=False)
    with pytest.raises((FileNotFoundError, ValueError), match="is not a GRADIEND checkpoint"):
        ModelWithGradiend.from_pretrained(str(tiny_masked_lm_dir), require_gradiend_model=True)
    n = len(model)
    assert n == model.pruned_length == model.unpruned_length == model.gradiend.input_dim
    assert str(model).startswith("TextModelWithGradiend(base_model=")
    grad = model.create_gradients(["Then [MASK] smiled."], ["he"], ["she"])
    before, reconstruction = model.encode(grad).detach(), model.gradiend.reconstruct(grad).detach()
    model.invert_encoding()  # flips the latent sign, keeps the reconstruction
    torch.testing.assert_close(model.encode(grad).detach(), -before)
    torch.testing.assert_close(model.gradiend.reconstruct(grad).detach(), reconstruction)
    model.set_feature_class_encoding_direction({"F": 1, "M": -1, "N": 0})
    with pytest.raises(ValueError, match="already set"):
        model.set_feature_class_encoding_direction({"F": -1, "M": 1})
    importance = model.get_weight_importance("decoder-weight")
    top = model.get_topk_weights(topk=5)
    assert top == torch.argsort(importance, descending=True, stable=True)[:5].tolist()
    mask = model.get_enhancer_mask(topk=5)
    flat = torch.cat([m.reshape(-1) for m in mask.values()])
    assert flat.nonzero().reshape(-1).tolist() == sorted(top)  # unpruned: base-global = local indices
    pruned = model.prune_gradiend(topk=5, inplace=False)
    assert len(pruned) == 5 and pruned.unpruned_length == n and pruned.base_model is model.base_model
    assert sorted(pruned.get_topk_weights(topk=5)) == sorted(top)
    other = model.with_original_base_model(copy.deepcopy(model.base_model))
    assert other.gradiend is model.gradiend and other.base_model is not model.base_model
    assert list(model.parameters()) == list(model.gradiend.parameters())
    assert model.cpu() is model and model.to("cpu") is model
    model.invert_encoding()  # a manual flip (update_direction=True) turns the directions with it
    assert model.feature_class_encoding_direction == {"F": -1, "M": 1, "N": 0}
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "gradiend_context.json").is_file()
    assert ModelWithGradiend.from_pretrained(tmp_path / "ckpt").feature_class_encoding_direction == {
        "F": -1, "M": 1, "N": 0}


def test_subclass_hooks_are_called(tiny_masked_lm_dir):
    calls = []

    class Frozen(TextModelWithGradiend):
        @classmethod
        def _resolve_device_config(cls, device=None):
            calls.append(("devices", device))
            return {"base_model": "cpu", "encoder": "cpu", "decoder": "cpu"}

        def _post_init_from_pretrained(self):
            calls.append(("post_init", type(self).__name__))

    model = Frozen.from_pretrained(str(tiny_masked_lm_dir), device=None)
    assert calls == [("devices", None), ("post_init", "Frozen")] and type(model) is Frozen
    model.gradiend.param_map[next(iter(model.gradiend.param_map))] = {"shape": (1,)}
    with pytest.raises(ValueError, match="must be a spec dict with 'shape' and 'repr'"):
        model._ensure_gradiend_param_map_spec()

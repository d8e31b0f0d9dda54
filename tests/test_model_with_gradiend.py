"""ModelWithGradiend on the tiny offline BERT and GPT-2: gradients, encoding, rewriting, pruning, I/O."""
import json
import os

import pytest
import torch

from gradiend.model.base_reference import sha256_file
from gradiend.model.param_mapped import ParamMappedGradiendModel
from gradiend.model.with_gradiend import ModelWithGradiend
from tests.objectives_support import hand_encoded

ROWS = {
    "masked": ["Nancy called her friend when [MASK] arrived.", "Yesterday [MASK] played the guitar.",
               "The chef tasted the soup, then [MASK] added pepper.", "After lunch [MASK] went home."],
    "factual": ["she", "he", "he", "she"],
    "alternative": ["he", "she", "she", "he"],
}


def _load(path, **kwargs):
    torch.manual_seed(0)
    return ModelWithGradiend.from_pretrained(path, **kwargs)


@pytest.fixture(scope="module")
def bert(tiny_masked_lm_dir):
    return _load(tiny_masked_lm_dir, source="alternative")


@pytest.fixture(scope="module")
def gpt2(tiny_causal_lm_dir):
    return _load(tiny_causal_lm_dir, source="alternative")


@pytest.fixture(params=["bert", "gpt2"])
def model(request):
    return request.getfixturevalue(request.param)


def _base_state(model):
    return {n: p.detach().clone() for n, p in model.base_model.named_parameters()}


def test_fresh_gradiend_maps_the_backbone_only(bert, gpt2):
    assert all(n.startswith("bert.") for n in bert.gradiend.param_map)
    assert not any("cls." in n for n in bert.gradiend.param_map)
    assert all(n.startswith("transformer.") for n in gpt2.gradiend.param_map)
    total = sum(p.numel() for p in bert.mapped_parameters().values())
    assert len(bert) == bert.unpruned_length == total
    assert bert.objective.name == "masked_lm" and gpt2.objective.name == "causal_lm"


def test_rewrite_changes_exactly_the_mapped_parameters(model):
    before = _base_state(model)
    w = model.gradiend.decoder_weight[:, 0].detach()
    b = model.gradiend.decoder_bias.detach()
    lr, ff = 1e-2, -1.0
    rewritten = model.rewrite_base_model(learning_rate=lr, feature_factor=ff)
    expected = model.gradiend.unflatten(lr * (ff * w + b))
    after = dict(rewritten.named_parameters())
    for name, old in before.items():
        if name in expected:
            torch.testing.assert_close(after[name] - old, expected[name], rtol=1e-4, atol=1e-7)
            assert not torch.equal(after[name], old)
        else:
            assert torch.equal(after[name], old), name
    for name, old in before.items():  # the loaded model itself is untouched
        assert torch.equal(dict(model.base_model.named_parameters())[name], old)
    sums = model.rewrite_base_model(learning_rate=lr, part="decoder-sum")
    name = next(iter(expected))
    torch.testing.assert_close(dict(sums.named_parameters())[name] - before[name],
                               model.gradiend.unflatten(lr * (w + b))[name], rtol=1e-4, atol=1e-7)


def test_rewrite_on_a_pruned_gradiend_touches_only_selected_entries(bert):
    before = _base_state(bert)
    pruned = bert.prune_gradiend(topk=50, inplace=False)
    assert len(pruned) == 50 and len(bert) == bert.unpruned_length
    rewritten = pruned.rewrite_base_model(learning_rate=1.0, feature_factor=1.0)
    changed = sum(int((p != before[n]).sum()) for n, p in rewritten.named_parameters())
    assert changed == 50
    flat_before = torch.cat([before[n].reshape(-1) for n in pruned.gradiend.base_layout])
    flat_after = torch.cat([dict(rewritten.named_parameters())[n].reshape(-1) for n in pruned.gradiend.base_layout])
    diff_idx = (flat_after != flat_before).nonzero().reshape(-1)
    kept = pruned.gradiend.base_global_indices()
    assert diff_idx.tolist() == kept.tolist()
    # each kept entry moved by exactly lr · (ff · w + b) of its own GRADIEND input
    update = pruned.gradiend.decoder_weight[:, 0].detach() + pruned.gradiend.decoder_bias.detach()
    torch.testing.assert_close(flat_after[kept] - flat_before[kept], update, rtol=1e-4, atol=1e-6)


def test_applied_update_restores_bitwise(model):
    before = _base_state(model)
    reference = model.rewrite_base_model(learning_rate=0.3, feature_factor=1.0)
    with model.applied_update(0.3, 1.0) as inside:
        assert inside is model.base_model
        for name, param in inside.named_parameters():
            assert torch.equal(param, dict(reference.named_parameters())[name]), name
    for name, param in model.base_model.named_parameters():
        assert torch.equal(param, before[name]), name
    with pytest.raises(RuntimeError, match="boom"):
        with model.applied_update(5.0, -1.0, part="encoder-weight"):
            raise RuntimeError("boom")
    for name, param in model.base_model.named_parameters():
        assert torch.equal(param, before[name]), name


def test_unknown_part_and_wrong_length_are_clear_errors(bert):
    with pytest.raises(ValueError, match=r"unknown part 'decoder-weights'.*'decoder', 'decoder-weight'"):
        bert.rewrite_base_model(1e-3, 1.0, part="decoder-weights")
    with pytest.raises(ValueError, match=f"expected {len(bert)} entries, got 7"):
        bert.encode(torch.zeros(7))


def test_source_and_target_from_one_forward_match_separate_gradients(bert):
    src, tgt = bert.source_and_target_gradients(ROWS)
    torch.testing.assert_close(src, bert.create_gradients(ROWS["masked"], ROWS["factual"], ROWS["alternative"]))
    g_f = bert.create_gradients(ROWS["masked"], ROWS["factual"], kind="factual")
    g_a = bert.create_gradients(ROWS["masked"], ROWS["factual"], ROWS["alternative"], kind="alternative")
    torch.testing.assert_close(tgt, g_f - g_a, rtol=1e-4, atol=1e-6)
    assert src.shape == (len(bert),)


def test_flat_gradients_of_a_pruned_gradiend_match_flattened_plain_gradients(tiny_masked_lm_dir):
    from gradiend.objectives.gradients import plain_parameter_gradients

    model = _load(tiny_masked_lm_dir, source="alternative")
    full = len(model)
    # sparse first third (stored as indices), dense middle third (a mask), the last entries whole
    keep = torch.zeros(full, dtype=torch.bool)
    keep[: full // 3: 20] = True
    keep[full // 3: 2 * full // 3: 2] = True
    keep[-100:] = True
    model.prune_gradiend(mask=keep)
    reprs = {spec["repr"] for spec in model.gradiend.param_map.values()}
    assert {"mask", "indices"} <= reprs, reprs
    buffers = {}
    src, tgt = model.source_and_target_gradients(ROWS, buffers)
    assert src is buffers["alternative"] and tgt is buffers["diff"] and src.shape == (len(model),)
    batch = model.prepare(ROWS["masked"], ROWS["factual"], ROWS["alternative"])
    plain = plain_parameter_gradients(model.base_model, model.mapped_parameters(), model.objective, batch,
                                      ["alternative", "diff"])
    torch.testing.assert_close(src, model.gradiend.flatten(plain["alternative"]))
    torch.testing.assert_close(tgt, model.gradiend.flatten(plain["diff"]), rtol=1e-4, atol=1e-6)
    first = src.clone()
    again, _ = model.source_and_target_gradients({k: v[::-1] for k, v in ROWS.items()}, buffers)
    assert again is src  # the buffer was reused and overwritten
    assert not torch.equal(again, first)


def test_encode_batch_jvp_matches_per_row_gradients(model):
    fast = model.encode_batch(ROWS["masked"], ROWS["factual"], ROWS["alternative"])
    plain = torch.stack([
        model.encode(model.create_gradients([m], [f], [a]))[0]
        for m, f, a in zip(ROWS["masked"], ROWS["factual"], ROWS["alternative"])
    ])
    assert fast.shape == (4,)
    torch.testing.assert_close(fast, plain.detach(), rtol=1e-4, atol=1e-5)
    # and both agree with a reference that shares none of the library's batching, losses or gradient code
    hand = torch.tensor([hand_encoded(model, m, f, a, model.source)
                         for m, f, a in zip(ROWS["masked"], ROWS["factual"], ROWS["alternative"])], dtype=torch.float64)
    assert float(hand.abs().min()) > 1e-4  # a real signal on every row
    torch.testing.assert_close(fast.double(), hand, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast, model.encode_batch(ROWS["masked"], ROWS["factual"], ROWS["alternative"], plain=True),
                               rtol=1e-4, atol=1e-5)
    single = model.encode(ROWS["masked"][1], ROWS["factual"][1], ROWS["alternative"][1])
    torch.testing.assert_close(single[0], fast[1], rtol=1e-4, atol=1e-5)


def test_encode_batch_takes_a_prepared_batch(bert):
    texts = bert.encode_batch(ROWS["masked"], ROWS["factual"], ROWS["alternative"])
    batch = bert.prepare(ROWS["masked"], ROWS["factual"], ROWS["alternative"])
    torch.testing.assert_close(bert.encode_batch(batch), texts)
    torch.testing.assert_close(bert.encode_batch(batch, plain=True), texts, rtol=1e-4, atol=1e-5)
    factual_only = bert.encode_batch(batch, kind="factual")
    assert not torch.allclose(factual_only, texts)
    with pytest.raises(ValueError, match="carries its own targets"):
        bert.encode_batch(batch, ROWS["factual"])


def test_invert_encoding_flips_encoded_sign(tiny_masked_lm_dir):
    model = _load(tiny_masked_lm_dir, feature_class_encoding_direction={"a": 1, "b": -1})
    grad = model.create_gradients(ROWS["masked"], ROWS["factual"], ROWS["alternative"])
    before = model.encode(grad).detach()
    model.invert_encoding()
    torch.testing.assert_close(model.encode(grad).detach(), -before)
    assert model.feature_class_encoding_direction == {"a": -1, "b": 1}
    model.invert_encoding(update_direction=False)
    assert model.feature_class_encoding_direction == {"a": -1, "b": 1}


def test_feature_factor_sign_table(bert):
    dirs = {"3SG": 1, "3PL": -1, "other": 0}
    table = {}
    for source in ("alternative", "factual", "diff"):
        m = bert._with(source=source, feature_class_encoding_direction=dirs)
        table[source] = (m.feature_factor("3SG"), m.feature_factor("3PL"), m.feature_factor("3SG", strengthen=False))
    assert table == {"alternative": (1.0, -1.0, -1.0), "factual": (-1.0, 1.0, 1.0), "diff": (-1.0, 1.0, 1.0)}
    with pytest.raises(ValueError, match="unknown class 'x'"):
        m.feature_factor("x")
    with pytest.raises(ValueError, match="direction 0"):
        m.feature_factor("other")
    with pytest.raises(ValueError, match="already set"):
        m.set_feature_class_encoding_direction({"3SG": -1})


def test_topk_and_pruning_keep_the_right_base_global_indices(tiny_masked_lm_dir):
    model = _load(tiny_masked_lm_dir)
    n = len(model)
    importance = torch.zeros(n)
    chosen = [5, n // 2, n - 1]
    importance[chosen] = torch.tensor([3.0, 2.0, 1.0])
    model.prune_gradiend(topk=3, importance=importance)
    assert model.gradiend.base_global_indices().tolist() == sorted(chosen)
    # decoder-weight importance ranks; the base-global ids survive a second pruning
    with torch.no_grad():
        model.gradiend.decoder.weight.copy_(torch.tensor([[0.1], [0.9], [0.5]]))
    assert model.get_topk_weights("decoder-weight", 2) == [n // 2, n - 1]
    model.prune_gradiend(topk=1)
    assert model.get_topk_weights("decoder-weight", 1) == [n // 2]
    mapped = {id(p) for p in model.mapped_parameters().values()}
    assert all(p.requires_grad == (id(p) in mapped) for p in model.base_model.parameters())


def test_save_load_round_trip(tiny_masked_lm_dir, tmp_path):
    model = _load(tiny_masked_lm_dir, source="alternative", feature_class_encoding_direction={"he": 1, "she": -1})
    model.prune_gradiend(topk=0.01)
    model.save_pretrained(tmp_path / "ckpt")
    context = json.loads((tmp_path / "ckpt" / "gradiend_context.json").read_text())
    assert context == {"source": "alternative", "target": "diff", "objective": "masked_lm",
                       "feature_class_encoding_direction": {"he": 1, "she": -1}}
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    relative = os.path.relpath(tiny_masked_lm_dir.resolve(), (tmp_path / "ckpt").resolve())
    assert config["metadata"]["base_model"] == relative  # same tree: stored relative to the checkpoint
    assert config["metadata"]["base_model_reference"] == {
        "kind": "relative", "sha256": {"model.safetensors": sha256_file(tiny_masked_lm_dir / "model.safetensors")}}
    for loaded in (ModelWithGradiend.from_pretrained(tmp_path / "ckpt"),
                   ModelWithGradiend.from_pretrained(base_model=str(tiny_masked_lm_dir), gradiend_model=tmp_path / "ckpt")):
        assert (loaded.source, loaded.target) == ("alternative", "diff")
        assert loaded.feature_class_encoding_direction == {"he": 1, "she": -1}
        for name, tensor in model.gradiend.state_dict().items():
            assert torch.equal(tensor, loaded.gradiend.state_dict()[name]), name
        assert list(loaded.gradiend.param_map) == list(model.gradiend.param_map)
        assert torch.equal(loaded.gradiend.base_global_indices(), model.gradiend.base_global_indices())
        for name, param in loaded.base_model.named_parameters():
            assert torch.equal(param, dict(model.base_model.named_parameters())[name])


def test_checkpoint_errors(tiny_masked_lm_dir, tiny_causal_lm_dir, bert, tmp_path):
    bert.save_pretrained(tmp_path / "no_weights")
    (tmp_path / "no_weights" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no_weights/model.safetensors"):
        ModelWithGradiend.from_pretrained(tmp_path / "no_weights")
    with pytest.raises(FileNotFoundError, match="folder not found"):
        ModelWithGradiend.from_pretrained(base_model=str(tiny_masked_lm_dir), gradiend_model=tmp_path / "missing")
    bert.save_pretrained(tmp_path / "bert_ckpt")
    with pytest.raises(ValueError, match=r"does not fit base model .*has no parameter\(s\) \['bert\."):
        ModelWithGradiend.from_pretrained(base_model=str(tiny_causal_lm_dir), gradiend_model=tmp_path / "bert_ckpt")
    name, spec = next(iter(bert.gradiend.param_map.items()))
    wrong = ParamMappedGradiendModel({name: (spec["shape"][0] + 1, *spec["shape"][1:])})
    wrong.save_pretrained(tmp_path / "wrong_shape", metadata={"base_model": str(tiny_masked_lm_dir)})
    with pytest.raises(ValueError, match=rf"does not fit .*expects '{name}' with shape"):
        ModelWithGradiend.from_pretrained(tmp_path / "wrong_shape")
    with pytest.raises(ValueError, match="tiny-bert is not a GRADIEND checkpoint"):
        ModelWithGradiend.from_pretrained(tiny_masked_lm_dir, require_gradiend_model=True)

"""ParamMappedGradiendModel: layout over named parameters, dict I/O, map-aware pruning, checkpoints."""
import json

import pytest
import torch

from gradiend.model.gradiend_model import GradiendModel
from gradiend.model.param_mapped import ParamMappedGradiendModel, select_param_map

SHAPES = {"emb": (4, 5), "lin.weight": (3, 4), "lin.bias": (3,)}  # 20 + 12 + 3 = 35 inputs


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ParamMappedGradiendModel(SHAPES)


def grads():
    g = torch.Generator().manual_seed(1)
    return {name: torch.randn(shape, generator=g) for name, shape in SHAPES.items()}


def test_flatten_unflatten_all(model):
    g = grads()
    flat = model.flatten(g)
    assert flat.shape == (35,)
    torch.testing.assert_close(flat[:20], g["emb"].reshape(-1))
    back = model.unflatten(flat)
    assert list(back) == list(SHAPES)
    for name in SHAPES:
        assert torch.equal(back[name], g[name])
    assert model.selected_flat_indices("emb") is None


def test_mask_and_indices_specs():
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = True
    spec = {
        "emb": {"shape": (4, 5), "repr": "mask", "mask": mask},
        "lin.weight": {"shape": (3, 4), "repr": "indices", "indices": torch.tensor([0, 5, 11])},
        "lin.bias": (3,),
    }
    m = ParamMappedGradiendModel(spec)
    assert m.input_dim == 2 + 3 + 3
    g = grads()
    flat = m.flatten(g)
    expected = torch.cat([g["emb"].reshape(-1)[[7, 15]], g["lin.weight"].reshape(-1)[[0, 5, 11]], g["lin.bias"]])
    assert torch.equal(flat, expected)
    back = m.unflatten(flat)
    assert torch.equal(back["emb"], torch.where(mask, g["emb"], 0.0))
    assert back["lin.weight"].reshape(-1)[[0, 5, 11]].tolist() == g["lin.weight"].reshape(-1)[[0, 5, 11]].tolist()
    assert int((back["lin.weight"] != 0).sum()) == 3
    assert m.selected_flat_indices("emb").tolist() == [7, 15]
    assert m.base_global_indices().tolist() == [7, 15, 20, 25, 31, 32, 33, 34]


def test_flatten_errors(model):
    g = grads()
    del g["lin.bias"]
    with pytest.raises(ValueError, match=r"lacks mapped parameter\(s\) \['lin.bias'\]"):
        model.flatten(g)
    g = grads()
    g["emb"] = torch.zeros(5, 4)
    with pytest.raises(ValueError, match=r"'emb' has shape \(5, 4\), expected \(4, 5\)"):
        model.flatten(g)
    with pytest.raises(ValueError, match="expected 35 entries, got 34"):
        model.unflatten(torch.zeros(34))
    with pytest.raises(ValueError, match="unknown repr 'rows'"):
        ParamMappedGradiendModel({"a": {"shape": (2,), "repr": "rows"}})
    with pytest.raises(ValueError, match="strictly increasing"):
        ParamMappedGradiendModel({"a": {"shape": (4,), "repr": "indices", "indices": torch.tensor([2, 1])}})


def test_reconstruct_accepts_dict_and_forward_encodes(model):
    g = grads()
    decoded, encoded = model.reconstruct(g, return_encoded=True)
    torch.testing.assert_close(encoded, model.forward_encoder(model.flatten(g)))
    torch.testing.assert_close(model(g), encoded)  # forward = encode (documented)
    assert isinstance(decoded, dict) and decoded["emb"].shape == (4, 5)
    torch.testing.assert_close(model.flatten(decoded), model.reconstruct(model.flatten(g)))


def test_pruned_model_selects_mapped_entries_of_a_full_gradient_dict(model):
    g = grads()
    g["other"] = torch.ones(3)  # not mapped at all: ignored
    pruned = model.prune(topk=4, importance=torch.arange(35.0))  # keeps the last 4 entries (lin.bias, lin.weight tail)
    assert list(pruned.param_map) == ["lin.weight", "lin.bias"]
    flat = pruned.flatten(g)
    expected = torch.cat([t.reshape(-1) for t in grads().values()])[31:]
    torch.testing.assert_close(flat, expected)
    torch.testing.assert_close(pruned(g), pruned.forward_encoder(expected))
    del g["lin.bias"]
    with pytest.raises(ValueError, match=r"lacks mapped parameter\(s\) \['lin.bias'\]"):
        pruned.flatten(g)
    g = grads()
    g["lin.weight"] = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"'lin.weight' has shape \(4, 3\), expected \(3, 4\)"):
        pruned.flatten(g)


def test_prune_remaps_map_and_keeps_base_global_indices(model):
    importance = torch.zeros(35)
    keep = [3, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]  # 1 of emb, 10 of 12 lin.weight, none of lin.bias
    importance[keep] = torch.arange(1.0, len(keep) + 1)
    pruned = model.prune(topk=len(keep), importance=importance)
    assert list(pruned.param_map) == ["emb", "lin.weight"]  # lin.bias dropped
    assert pruned.param_map["emb"]["repr"] == "indices" and pruned.param_map["emb"]["indices"].tolist() == [3]
    assert pruned.param_map["lin.weight"]["repr"] == "mask"
    assert pruned.base_global_indices().tolist() == keep
    assert torch.equal(pruned.decoder_weight, model.decoder_weight[keep])
    # prune again: indices stay in the base-global space even though lin.bias is gone
    importance2 = torch.zeros(pruned.input_dim)
    importance2[[0, 11]] = 1.0
    twice = pruned.prune(topk=2, importance=importance2)
    assert twice.base_global_indices().tolist() == [3, 30]
    assert model.prune(topk=1.0).param_map == model.param_map
    emb_only = model.prune(mask=torch.arange(35) < 20)
    assert emb_only.param_map == {"emb": {"shape": (4, 5), "repr": "all"}}
    g = {name: t for name, t in grads().items() if name in twice.param_map}
    assert torch.equal(twice.flatten(g), torch.stack([g["emb"].reshape(-1)[3], g["lin.weight"].reshape(-1)[10]]))


def test_lazy_prune_on_meta_then_materialize():
    lazy = ParamMappedGradiendModel(SHAPES, device="meta")
    pruned = lazy.prune(topk=0.2, importance=torch.arange(35.0))
    assert pruned.input_dim == 7 and pruned.encoder_weight.is_meta
    torch.manual_seed(4)
    pruned.materialize("cpu")
    torch.manual_seed(4)
    fresh = ParamMappedGradiendModel(pruned.param_map, base_layout=pruned.base_layout)
    assert torch.equal(pruned.encoder_weight, fresh.encoder_weight)
    assert torch.equal(pruned.decoder_bias, fresh.decoder_bias)
    assert pruned.base_global_indices().tolist() == list(range(28, 35))


def test_select_param_map_validates_length():
    with pytest.raises(ValueError, match="35 entries"):
        select_param_map(ParamMappedGradiendModel(SHAPES, device="meta").param_map, torch.ones(3, dtype=torch.bool))


def test_save_load_round_trip_after_pruning(model, tmp_path):
    importance = torch.zeros(35)
    importance[[3, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]] = 1.0
    pruned = model.prune(threshold=0.5, importance=importance)
    pruned.save_pretrained(tmp_path, metadata={"base_model": "x"})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["mapping"]["parameters"] == [
        {"name": "emb", "shape": [4, 5], "repr": "indices"},
        {"name": "lin.weight", "shape": [3, 4], "repr": "mask"},
    ]
    assert (tmp_path / "mapping.safetensors").is_file()
    loaded = ParamMappedGradiendModel.from_pretrained(tmp_path)
    assert loaded.base_layout == pruned.base_layout
    for name, spec in pruned.param_map.items():
        other = loaded.param_map[name]
        assert other["shape"] == spec["shape"] and other["repr"] == spec["repr"]
        assert torch.equal(other[spec["repr"]], spec[spec["repr"]])
    for name, tensor in pruned.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert loaded.base_global_indices().tolist() == pruned.base_global_indices().tolist()
    # an unpruned save removes the stale mapping file
    model.save_pretrained(tmp_path)
    assert not (tmp_path / "mapping.safetensors").exists()
    assert ParamMappedGradiendModel.from_pretrained(tmp_path).param_map == model.param_map


def test_mapping_errors(tmp_path):
    GradiendModel(5).save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="has no parameter mapping"):
        ParamMappedGradiendModel.from_pretrained(tmp_path / "plain")
    m = ParamMappedGradiendModel({"a": {"shape": (40,), "repr": "indices", "indices": torch.tensor([1, 2])}})
    m.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "mapping.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="mapping.safetensors"):
        ParamMappedGradiendModel.from_pretrained(tmp_path / "m")

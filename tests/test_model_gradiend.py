"""GradiendModel: shapes, init, update vectors, importance, pruning, sign flip, checkpoints."""
import json
import math

import pytest
import torch

from gradiend.model.gradiend_model import GradiendModel


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GradiendModel(12)


def test_forward_shapes_and_identity_decoder(model):
    x = torch.randn(12)
    decoded, encoded = model.reconstruct(x, return_encoded=True)
    assert decoded.shape == (12,) and encoded.shape == (1,)
    torch.testing.assert_close(model(x), encoded)  # forward() encodes (documented); forward_decoder goes back
    expected_h = torch.tanh(model.encoder_weight @ x + model.encoder_bias)
    torch.testing.assert_close(encoded, expected_h)
    torch.testing.assert_close(decoded, model.decoder_weight[:, 0] * expected_h + model.decoder_bias)
    assert model.reconstruct(torch.randn(3, 12)).shape == (3, 12)
    assert model(torch.randn(3, 12)).shape == (3, 1)
    torch.testing.assert_close(model.forward_decoder(0.5), model.decoder_weight[:, 0] * 0.5 + model.decoder_bias)


def test_wrong_length_input_is_clear_error(model):
    with pytest.raises(ValueError, match="expected 12 entries, got 11"):
        model(torch.randn(11))


def test_init_follows_reference_and_callers_seed():
    torch.manual_seed(3)
    a = GradiendModel(50)
    torch.manual_seed(3)
    b = GradiendModel(50)
    bound = float(a.encoder_weight.detach().max())
    assert float(a.decoder_weight.detach().abs().max()) <= bound and float(a.decoder_bias.detach().abs().max()) <= bound
    assert float(a.encoder_weight.detach().abs().max()) <= 1 / math.sqrt(50)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    # the reference's recipe drawn here from the same seed: PyTorch's default Linear init for the encoder
    # (and a Linear(1, 50) for the decoder, drawn but then overwritten), decoder weight and bias ~ U(-x, x),
    # x = max(encoder weight)
    torch.manual_seed(3)
    encoder, decoder = torch.nn.Linear(50, 1), torch.nn.Linear(1, 50)
    x = float(encoder.weight.detach().max())
    with torch.no_grad():
        decoder.weight.uniform_(-x, x)
        decoder.bias.uniform_(-x, x)
    for got, want in ((a.encoder.weight, encoder.weight), (a.encoder.bias, encoder.bias),
                      (a.decoder.weight, decoder.weight), (a.decoder.bias, decoder.bias)):
        assert torch.equal(got, want)


def test_activations_and_unknown_activation():
    # each name's function written out by hand, applied to the encoder's and the decoder's pre-activations
    functions = {
        "tanh": torch.tanh, "relu": lambda z: torch.where(z > 0, z, 0.0),
        "leakyrelu": lambda z: torch.where(z > 0, z, 0.01 * z),
        "gelu": lambda z: 0.5 * z * (1 + torch.erf(z / math.sqrt(2))), "silu": lambda z: z / (1 + torch.exp(-z)),
        "elu": lambda z: torch.where(z > 0, z, torch.exp(z) - 1), "sigmoid": lambda z: 1 / (1 + torch.exp(-z)),
        "smht": lambda z: z.clamp(-1.0, 1.0), "id": lambda z: z,
    }
    x = torch.tensor([[3.0, -1.0, 2.0, 0.5], [-3.0, 1.0, -2.0, -0.5]])  # opposite inputs: both signs
    for name, f in functions.items():
        torch.manual_seed(0)
        m = GradiendModel(4, activation_encoder=name, activation_decoder=name)
        with torch.no_grad():
            m.encoder.weight.mul_(4.0)  # pre-activations beyond ±1, where smht, tanh and sigmoid differ
        decoded, encoded = m.reconstruct(x, return_encoded=True)
        pre = x @ m.encoder_weight.detach().T + m.encoder_bias.detach()
        assert float(pre.min()) < -1 and float(pre.max()) > 1, name
        torch.testing.assert_close(encoded.detach(), f(pre), msg=name)
        expected = f(f(pre) @ m.decoder_weight.detach().T + m.decoder_bias.detach())
        torch.testing.assert_close(decoded.detach(), expected, msg=name)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        GradiendModel(4, activation_encoder="swish")


def test_update_vectors_and_importance(model):
    w, b = model.decoder_weight[:, 0].detach(), model.decoder_bias.detach()
    torch.testing.assert_close(model.get_update_vector("decoder-weight"), w)
    torch.testing.assert_close(model.get_update_vector("decoder-bias"), b)
    torch.testing.assert_close(model.get_update_vector("decoder-sum"), w + b)
    torch.testing.assert_close(model.get_update_vector("encoder-weight"), model.encoder_weight[0].detach())
    torch.testing.assert_close(model.get_weight_importance("decoder-sum"), (w + b).abs())
    torch.testing.assert_close(model.get_weight_importance("decoder-weight"), w.abs())
    with pytest.raises(ValueError, match="unknown part 'decoder'.*decoder-weight"):
        model.get_update_vector("decoder")
    with pytest.raises(ValueError, match="unknown part"):
        model.get_weight_importance("weights")


def test_update_vector_without_decoder_bias():
    m = GradiendModel(5, bias_decoder=False)
    assert torch.equal(m.get_update_vector("decoder-bias"), torch.zeros(5))
    torch.testing.assert_close(m.get_update_vector("decoder-sum"), m.decoder_weight[:, 0].detach())


def test_topk_int_and_fraction(model):
    importance = model.get_weight_importance("decoder-weight")
    top = model.get_topk_weights("decoder-weight", 3)
    assert top.tolist() == torch.argsort(importance, descending=True)[:3].tolist()
    assert len(model.get_topk_weights("decoder-weight", 0.25)) == math.ceil(0.25 * 12)
    assert len(model.get_topk_weights("decoder-weight", 100)) == 12


def test_prune_combines_mask_threshold_topk(model):
    importance = torch.tensor([5, 1, 7, 3, 9, 2, 8, 0, 6, 4, 11, 10], dtype=torch.float)
    mask = torch.ones(12, dtype=torch.bool)
    mask[10] = False  # the most important one is masked out
    pruned, keep = model.prune(topk=3, threshold=4.0, mask=mask, importance=importance, return_mask=True)
    assert keep.nonzero().reshape(-1).tolist() == [4, 6, 11]
    assert pruned is not model and model.input_dim == 12 and pruned.input_dim == 3
    idx = torch.tensor([4, 6, 11])
    assert torch.equal(pruned.encoder_weight, model.encoder_weight[:, idx])
    assert torch.equal(pruned.decoder_weight, model.decoder_weight[idx])
    assert torch.equal(pruned.decoder_bias, model.decoder_bias[idx])
    assert torch.equal(pruned.encoder_bias, model.encoder_bias)
    x = torch.randn(12)
    torch.testing.assert_close(pruned.reconstruct(x[idx]), model.reconstruct(torch.where(keep, x, 0.0))[idx])


def test_prune_fraction_of_survivors_threshold_only_and_noop(model):
    importance = torch.arange(12, dtype=torch.float)
    _, keep = model.prune(topk=0.5, threshold=4.0, importance=importance, return_mask=True)
    assert keep.nonzero().reshape(-1).tolist() == [8, 9, 10, 11]  # ceil(0.5 * 8 survivors)
    same = model.prune(topk=1.0)
    assert same.input_dim == 12 and torch.equal(same.decoder_weight, model.decoder_weight)
    in_place = model.prune(threshold=6.0, importance=importance, inplace=True)
    assert in_place is model and model.input_dim == 6
    with pytest.raises(ValueError, match="at least one of"):
        model.prune()
    with pytest.raises(ValueError, match="keep no input"):
        model.prune(threshold=1e9)


def test_invert_encoding_flips_encoded_sign(model):
    x = torch.randn(12)
    before = model.forward_encoder(x)
    dec_w = model.decoder_weight.detach().clone()
    model.invert_encoding()
    torch.testing.assert_close(model.forward_encoder(x), -before)
    assert torch.equal(model.decoder_weight, -dec_w)


@pytest.mark.parametrize("bias_decoder", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "id"])
def test_invert_encoding_preserves_reconstruction(bias_decoder, activation):
    torch.manual_seed(1)
    model = GradiendModel(12, bias_decoder=bias_decoder, activation_encoder=activation)
    if bias_decoder:
        with torch.no_grad():
            model.decoder.bias.copy_(torch.linspace(-1.0, 1.0, 12))  # a bias that a flip would show
    x = torch.randn(5, 12)
    reconstruction, encoded = model.reconstruct(x), model(x)
    bias = None if model.decoder.bias is None else model.decoder.bias.detach().clone()
    model.invert_encoding()
    torch.testing.assert_close(model(x), -encoded)
    torch.testing.assert_close(model.reconstruct(x), reconstruction)
    if bias_decoder:
        assert torch.equal(model.decoder.bias, bias)  # the bias is not part of the flip


def test_invert_encoding_refuses_an_activation_that_is_not_odd():
    model = GradiendModel(12, activation_encoder="relu")
    with pytest.raises(ValueError, match="odd encoder activation"):
        model.invert_encoding()


def test_save_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt", metadata={"note": "x"}, training={"steps": 3})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["architecture"] == {
        "input_dim": 12, "latent_dim": 1, "activation_encoder": "tanh", "activation_decoder": "id",
        "bias_decoder": True, "torch_dtype": "float32",
    }
    assert config["metadata"] == {"note": "x"} and config["mapping"] is None
    assert json.loads((tmp_path / "ckpt" / "training.json").read_text()) == {"steps": 3}
    loaded = GradiendModel.from_pretrained(tmp_path / "ckpt")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert loaded.metadata == {"note": "x"}
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_bfloat16_round_trip(tmp_path):
    m = GradiendModel(6, torch_dtype="bfloat16", bias_decoder=False)
    m.save_pretrained(tmp_path)
    loaded = GradiendModel.from_pretrained(tmp_path)
    assert loaded.dtype == torch.bfloat16 and loaded.decoder_bias is None
    assert torch.equal(loaded.encoder_weight, m.encoder_weight)


def test_load_errors_name_the_file(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        GradiendModel.from_pretrained(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        GradiendModel.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        GradiendModel.from_pretrained(tmp_path / "a")
    model.save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors is not a readable"):
        GradiendModel.from_pretrained(tmp_path / "b")
    GradiendModel(13).save_pretrained(tmp_path / "c")
    model.save_pretrained(tmp_path / "d")
    (tmp_path / "d" / "model.safetensors").write_bytes((tmp_path / "c" / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"model.safetensors: tensor 'encoder.weight' has shape \(1, 13\)"):
        GradiendModel.from_pretrained(tmp_path / "d")

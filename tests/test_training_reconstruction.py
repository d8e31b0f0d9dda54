"""The hand-written reconstruction gradients against autograd on the same GRADIEND."""
import pytest
import torch

from gradiend.model.gradiend_model import GradiendModel
from gradiend.training.reconstruction import ReconstructionLoss


def _autograd(model, source, target):
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.mse_loss(model.reconstruct(source), target)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("latent, encoder_act, decoder_act, bias", [
    (1, "tanh", "id", True), (1, "relu", "id", False), (3, "gelu", "id", True), (2, "tanh", "tanh", True),
])
def test_written_gradients_match_autograd(latent, encoder_act, decoder_act, bias):
    torch.manual_seed(0)
    model = GradiendModel(input_dim=500, latent_dim=latent, activation_encoder=encoder_act,
                          activation_decoder=decoder_act, bias_decoder=bias)
    with torch.no_grad():
        model.encoder.weight.mul_(20)  # pre-activations away from 0, so relu/tanh derivatives matter
    compute = ReconstructionLoss()
    for step in range(2):  # the second call overwrites the reused gradient tensors, never adds to them
        source, target = torch.randn(500), torch.randn(500)
        expected_loss, expected = _autograd(model, source, target)
        kept = {n: p.grad for n, p in model.named_parameters()}
        loss = compute(model, source, target)
        torch.testing.assert_close(loss, expected_loss)
        for name, param in model.named_parameters():
            torch.testing.assert_close(param.grad, expected[name], rtol=1e-5, atol=1e-7, msg=name)
            if decoder_act == "id" and step == 1:
                assert param.grad is kept[name]


def test_optimizer_steps_agree_with_the_autograd_path():
    torch.manual_seed(1)
    fused, plain = GradiendModel(input_dim=300), GradiendModel(input_dim=300)
    plain.load_state_dict(fused.state_dict())
    opt_fused = torch.optim.AdamW(fused.parameters(), lr=1e-2)
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-2)
    compute = ReconstructionLoss()
    for _ in range(5):
        source, target = torch.randn(300), torch.randn(300)
        compute(fused, source, target)
        opt_fused.step()
        _autograd(plain, source, target)
        opt_plain.step()
    for (name, a), b in zip(fused.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("latent, bias", [(1, True), (1, False), (3, True)])
def test_consumed_inputs_give_the_same_steps(latent, bias, monkeypatch):
    """With ``consume=True`` the source and target vectors hold the gradients (latent 1: all three
    input-sized ones, the decoder weight's written by ``step`` after the others stepped); every loss
    and every weight after AdamW steps equals the separate-tensor path bit for bit."""
    import gradiend.training.reconstruction as reconstruction

    monkeypatch.setattr(reconstruction, "CHUNK", 37)  # W_d h + b_d a chunk at a time, odd boundaries
    torch.manual_seed(2)
    separate = GradiendModel(input_dim=400, latent_dim=latent, bias_decoder=bias)
    consumed = GradiendModel(input_dim=400, latent_dim=latent, bias_decoder=bias)
    consumed.load_state_dict(separate.state_dict())
    opt_separate = torch.optim.AdamW(separate.parameters(), lr=1e-2, fused=True)
    opt_consumed = torch.optim.AdamW(consumed.parameters(), lr=1e-2, fused=True)
    plain, reusing = ReconstructionLoss(), ReconstructionLoss()
    for _ in range(3):
        source, target = torch.randn(400), torch.randn(400)
        expected_loss = plain(separate, source, target)
        plain.step(opt_separate)
        held_source, held_target = source.clone(), target.clone()
        loss = reusing(consumed, held_source, held_target, consume=True)
        if latent == 1:
            assert consumed.encoder.weight.grad.data_ptr() == held_source.data_ptr()
            assert consumed.decoder.weight.grad is None  # step() writes it over g
        reusing.step(opt_consumed)
        assert torch.equal(loss, expected_loss)
        for (name, param), other in zip(consumed.state_dict().items(), separate.state_dict().values()):
            assert torch.equal(param, other), name
    same = torch.randn(400)  # one tensor as source and target (equal kinds) is left intact
    kept = same.clone()
    reusing(consumed, same, same, consume=True)
    assert torch.equal(same, kept)

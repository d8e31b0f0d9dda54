"""The ModelWithGradiend abstraction carries a non-text model family.

A small MLP predicts whether its first input is positive. ``SignMLPWithGradiend`` implements only the
documented hooks (``create_gradients``, ``_load_model``, ``_save_model``); training, encoding,
rewriting, saving and loading are the base class's trainer-independent API.
"""
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from gradiend.model.param_mapped import ParamMappedGradiendModel
from gradiend.model.with_gradiend import ModelWithGradiend
from gradiend.util.io import load_safetensors, save_safetensors

WEIGHTS = "mlp.safetensors"
LR = 5.0  # rewrite learning rate: large, the MLP's logits are confident


class SignMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.out = nn.Linear(8, 2)  # logits of ("neg", "pos")

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


class SignMLPWithGradiend(ModelWithGradiend):
    """Feature: the sign of input 0. ``factual`` = loss of the true class, ``alternative`` = of the other."""

    def create_gradients(self, x, kind=None):
        kind = kind or self.source
        x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 4)
        logits = self.base_model(x)
        factual = (x[:, 0] > 0).long()
        losses = {"factual": nn.functional.cross_entropy(logits, factual),
                  "alternative": nn.functional.cross_entropy(logits, 1 - factual)}
        losses["diff"] = losses["factual"] - losses["alternative"]
        params = self.mapped_parameters()
        grads = torch.autograd.grad(losses[kind], list(params.values()))
        return self.gradiend.flatten(dict(zip(params, grads)))

    @classmethod
    def _load_model(cls, load_directory, base_model_id=None, gradiend_kwargs=None, **_):
        model = SignMLP()
        model.load_state_dict(load_safetensors(Path(base_model_id or load_directory) / WEIGHTS))
        return (model.eval(),)

    def _save_model(self, save_directory):
        folder = Path(save_directory) / "base"
        folder.mkdir(exist_ok=True)
        save_safetensors(dict(self.base_model.state_dict()), folder / WEIGHTS)
        return {"base_model": str(folder)}


def _inputs(n, seed):
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    x[:, 0] = torch.sign(x[:, 0]) * (0.5 + x[:, 0].abs())  # keep clear of the decision boundary
    return x


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory):
    """A SignMLP trained to tell the sign of input 0, saved as a plain folder."""
    torch.manual_seed(0)
    model, x = SignMLP(), _inputs(256, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long()).backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("mlp")
    save_safetensors(dict(model.state_dict()), folder / WEIGHTS)
    return folder


def p_pos(model, x):
    with torch.no_grad():
        return torch.softmax(model(x), dim=-1)[:, 1]


def test_abstract_base_cannot_be_instantiated():
    gradiend = ParamMappedGradiendModel({"out.bias": (2,)})
    with pytest.raises(TypeError, match="abstract"):
        ModelWithGradiend(SignMLP(), gradiend)


class HeadFirst(nn.Module):
    """A head registered before the body it shares its weight with (as XLM-RoBERTa's ``lm_head``)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 4, bias=False)
        self.body = nn.Linear(4, 4)
        self.head.weight = self.body.weight

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))


def test_a_tied_parameter_is_selected_and_rewritten_under_any_of_its_names():
    model = HeadFirst()
    assert list(dict(model.named_parameters())) == ["head.weight", "body.bias"]  # the body's name is hidden
    selected = SignMLPWithGradiend._gradiend_parameters(model, ["body.*"])
    assert list(selected) == ["body.weight", "body.bias"] and selected["body.weight"] is model.body.weight
    assert list(SignMLPWithGradiend._gradiend_parameters(model, ["*.weight"])) == ["head.weight"]  # mapped once
    gradiend = ParamMappedGradiendModel({n: tuple(p.shape) for n, p in selected.items()})
    mwg = SignMLPWithGradiend(model, gradiend)
    rewritten = mwg.rewrite_base_model(learning_rate=1.0)
    update = mwg.update_vector(1.0, "decoder")
    assert torch.equal(rewritten.body.weight, model.body.weight + update[:16].reshape(4, 4))
    assert rewritten.head.weight is rewritten.body.weight  # still tied in the copy


def test_mlp_family_trains_encodes_rewrites_and_round_trips(mlp_dir, tmp_path):
    torch.manual_seed(0)
    # the default _create_gradiend maps the parameters that `params` patterns name: here both biases,
    # whose alternative-loss gradients point in opposite directions for the two signs
    mwg = SignMLPWithGradiend.from_pretrained(str(mlp_dir), source="alternative", target="alternative",
                                              params=["*bias"])
    assert list(mwg.gradiend.param_map) == ["hidden.bias", "out.bias"] and mwg.gradiend.input_dim == 8 + 2
    x = _inputs(64, 1)
    optimizer = torch.optim.Adam(mwg.parameters(), lr=1e-2)
    for step in range(120):  # trainer-independent: one example per step, reconstruct its gradient
        grad = mwg.create_gradients(x[step % len(x)])
        optimizer.zero_grad()
        nn.functional.mse_loss(mwg.gradiend.reconstruct(grad), grad.detach()).backward()
        optimizer.step()

    test = _inputs(40, 2)
    encoded = torch.stack([mwg.encode(row) for row in test]).reshape(-1).detach()
    positive = test[:, 0] > 0
    if encoded[positive].mean() < 0:
        mwg.invert_encoding()
        encoded = -encoded
    assert bool((encoded[positive] > 0).all() and (encoded[~positive] < 0).all())  # the sign is encoded
    mwg.set_feature_class_encoding_direction({"pos": 1, "neg": -1})

    negatives = test[~positive]
    before = p_pos(mwg.base_model, negatives).mean()
    rewritten = mwg.rewrite_base_model(learning_rate=LR, feature_factor=mwg.feature_factor("pos"))
    after = p_pos(rewritten, negatives)
    assert bool((after > p_pos(mwg.base_model, negatives)).all()) and after.mean() > before + 0.3  # toward "pos"
    weakened = mwg.rewrite_base_model(learning_rate=LR, feature_factor=mwg.feature_factor("pos", strengthen=False))
    assert bool((p_pos(weakened, test[positive]) < p_pos(mwg.base_model, test[positive])).all())
    assert torch.equal(p_pos(mwg.base_model, negatives).mean(), before)  # the loaded model is untouched

    mwg.save_pretrained(tmp_path / "run" / "ckpt")
    moved = Path(shutil.move(str(tmp_path / "run"), str(tmp_path / "moved")))
    loaded = SignMLPWithGradiend.from_pretrained(moved / "ckpt")
    assert type(loaded) is SignMLPWithGradiend and loaded.feature_class_encoding_direction == {"pos": 1, "neg": -1}
    assert (loaded.source, loaded.target) == ("alternative", "alternative")
    assert torch.equal(torch.stack([loaded.encode(row) for row in test]).reshape(-1).detach(), encoded)
    assert torch.equal(p_pos(loaded.rewrite_base_model(LR, loaded.feature_factor("pos")), negatives), after)

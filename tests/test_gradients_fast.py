"""The fast gradient paths agree with the plain ones (docs/design.md §2.1–2.2), on a masked and a causal LM,
in float64 (to 1e-9 per example) and float32 (norm-relative 1e-4 over the batch)."""
from __future__ import annotations

import pytest
import torch

from gradiend.model.backbone import mapped_parameters
from gradiend.model.loading import load_base_model
from gradiend.objectives import (
    jvp_directional,
    parameter_gradients,
    per_example_gradient_dot,
    plain_parameter_gradients,
)
from tests.objectives_support import flat, masked_rows, random_tangent

N_ROWS = 16


# "pieces": every other row's alternative has several sub-tokens, so those rows score it on their own input
@pytest.fixture(scope="module", params=["masked-float64", "masked-float32", "causal-float64", "causal-float32",
                                        "masked-pieces-float64", "causal-pieces-float64"])
def setup(request, tiny_masked_lm_dir, tiny_causal_lm_dir, demo_corpus):
    family, *pieces, dtype_name = request.param.split("-")
    dtype = getattr(torch, dtype_name)
    model, tokenizer, objective = load_base_model(
        tiny_masked_lm_dir if family == "masked" else tiny_causal_lm_dir, torch_dtype=dtype
    )
    masked, factual, alternative = masked_rows(demo_corpus, N_ROWS, need_left_context=True)
    if pieces:
        alternative = [("he-she" if family == "masked" else "zxqvj") if i % 2 else a for i, a in enumerate(alternative)]
    batch = objective.prepare(tokenizer, masked, factual, alternative)
    assert batch.shared_positions != bool(pieces)
    params = mapped_parameters(model)
    return model, objective, batch, params, dtype


def _assert_per_example_close(fast: torch.Tensor, plain: torch.Tensor, dtype) -> None:
    assert fast.shape == plain.shape == (N_ROWS,)
    if dtype == torch.float64:
        torch.testing.assert_close(fast, plain, rtol=1e-9, atol=1e-12 * float(plain.abs().max()))
    else:
        assert float((fast.double() - plain.double()).norm() / plain.double().norm()) <= 1e-4


@pytest.mark.parametrize("kind", ["factual", "diff"])
def test_jvp_equals_per_example_gradient_dot(setup, kind):
    model, objective, batch, params, dtype = setup
    tangent = random_tangent(params, seed=1)
    fast = jvp_directional(model, tangent, objective, batch, kind)
    plain = per_example_gradient_dot(model, tangent, objective, batch, kind)
    assert float(plain.abs().min()) > 0  # a real signal on every row, not all zeros
    _assert_per_example_close(fast, plain, dtype)


@pytest.mark.parametrize("kind", ["factual", "diff"])
def test_jvp_positions_shares_sum_to_the_batch_gradient_dot(setup, kind):
    model, objective, batch, params, dtype = setup
    tangent = random_tangent(params, seed=2)
    losses, shares = jvp_directional(model, tangent, objective, batch, kind, reduction="positions", return_losses=True)
    grads = parameter_gradients(model, params, objective, batch, [kind], dtype=None)[kind]
    expected = sum((grads[n] * tangent[n]).sum() for n in params)
    torch.testing.assert_close(shares.sum(), expected, rtol=1e-8 if dtype == torch.float64 else 1e-4, atol=0.0)
    assert losses.shape == (N_ROWS,)


def test_jvp_of_a_tangent_on_some_parameters_only(setup):
    model, objective, batch, params, dtype = setup
    first = next(iter(params))
    tangent = {first: random_tangent(params, seed=3)[first]}
    fast = jvp_directional(model, tangent, objective, batch, "diff")
    plain = per_example_gradient_dot(model, tangent, objective, batch, "diff")
    _assert_per_example_close(fast, plain, dtype)


def test_one_forward_gradients_equal_separate_computations(setup):
    model, objective, batch, params, dtype = setup
    kinds = ["factual", "alternative", "diff"]
    fast = parameter_gradients(model, params, objective, batch, kinds, dtype=None)
    plain = plain_parameter_gradients(model, params, objective, batch, kinds, dtype=None)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    for kind in kinds:
        assert list(fast[kind]) == list(params)
        reference = flat(plain[kind])
        assert float((flat(fast[kind]) - reference).norm() / reference.norm()) <= tolerance, kind
    # the one-backward logit difference is the difference of the two CE gradients
    f_minus_a = flat(fast["factual"]) - flat(fast["alternative"])
    assert float((flat(fast["diff"]) - f_minus_a).norm() / f_minus_a.norm()) <= tolerance


def test_gradients_reach_frozen_parameters_and_leave_them_frozen(setup):
    model, objective, batch, params, dtype = setup
    names = list(params)[:3]
    subset = {n: params[n] for n in names}
    unfrozen = parameter_gradients(model, subset, objective, batch, "diff")["diff"]
    assert float(flat(unfrozen).norm()) > 0
    for p in subset.values():
        p.requires_grad_(False)
    try:
        grads = parameter_gradients(model, subset, objective, batch, "diff")["diff"]
        assert all(g.dtype == torch.float32 for g in grads.values())
        for name in names:  # the same gradients as with the parameters trainable, not zeros
            torch.testing.assert_close(grads[name], unfrozen[name], rtol=0, atol=0)
        assert not any(p.requires_grad for p in subset.values())
    finally:
        for p in subset.values():
            p.requires_grad_(True)


def test_bad_tangents_are_named(setup):
    model, objective, batch, params, _ = setup
    name = next(iter(params))
    with pytest.raises(KeyError, match="no parameter of the model: 'nope'"):
        jvp_directional(model, {"nope": torch.zeros(1)}, objective, batch, "factual")
    with pytest.raises(ValueError, match=f"tangent {name!r} has shape"):
        jvp_directional(model, {name: torch.zeros(3)}, objective, batch, "factual")
    with pytest.raises(ValueError, match="unknown loss kind"):
        parameter_gradients(model, params, objective, batch, ["source"])


def test_fused_attention_without_forward_mode_is_a_clear_error(tiny_masked_lm_dir, demo_corpus):
    model, tokenizer, objective = load_base_model(tiny_masked_lm_dir, attn_implementation="sdpa")
    batch = objective.prepare(tokenizer, *masked_rows(demo_corpus, 4))
    tangent = random_tangent(mapped_parameters(model))
    try:
        fast = jvp_directional(model, tangent, objective, batch, "factual")
    except NotImplementedError as error:
        assert "attn_implementation='eager'" in str(error)
        return
    # this torch build has the forward-mode formula: then the fused path must give the right numbers,
    # not merely return (eager is the safe default, not the only correct one)
    plain = per_example_gradient_dot(model, tangent, objective, batch, "factual")
    assert fast.shape == plain.shape == (4,) and float(plain.abs().min()) > 0
    assert float((fast.double() - plain.double()).norm() / plain.double().norm()) <= 1e-4

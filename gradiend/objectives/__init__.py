"""Prediction objectives: masked rows -> scored model inputs, target losses, and fast gradients.

- :mod:`.base`: :class:`TargetBatch`, :class:`Objective`, :func:`resolve_objective`
- :mod:`.masked_lm`, :mod:`.causal_lm`: the two objectives (how a row becomes inputs + targets)
- :mod:`.losses`: per-position / per-row / batch cross-entropy, the logit-difference "diff"
- :mod:`.gradients`: one-forward multi-kind gradients, batched JVP encoding, and the plain
  reference paths they are tested against
- :mod:`.heads`: output head only at the scored positions
"""
from gradiend.objectives.base import DEFAULT_MASK, Objective, TargetBatch, resolve_objective
from gradiend.objectives.causal_lm import CausalLMObjective
from gradiend.objectives.gradients import (
    jvp_directional,
    parameter_gradients,
    per_example_gradient_dot,
    plain_parameter_gradients,
)
from gradiend.objectives.losses import KINDS, batch_loss, position_losses, row_losses
from gradiend.objectives.masked_lm import MaskedLMObjective

__all__ = [
    "DEFAULT_MASK",
    "KINDS",
    "CausalLMObjective",
    "MaskedLMObjective",
    "Objective",
    "TargetBatch",
    "batch_loss",
    "jvp_directional",
    "parameter_gradients",
    "per_example_gradient_dot",
    "plain_parameter_gradients",
    "position_losses",
    "resolve_objective",
    "row_losses",
]

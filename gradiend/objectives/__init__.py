"""Prediction objectives: masked rows -> scored model inputs (:mod:`.base`, :mod:`.masked_lm`,
:mod:`.causal_lm`), target losses (:mod:`.losses`), their fast and plain gradients (:mod:`.gradients`)."""
from gradiend.objectives.base import resolve_objective
from gradiend.objectives.causal_lm import CausalLMObjective
from gradiend.objectives.gradients import (
    jvp_directional,
    parameter_gradients,
    per_example_gradient_dot,
    plain_parameter_gradients,
)
from gradiend.objectives.losses import batch_loss, position_losses, row_losses
from gradiend.objectives.masked_lm import MaskedLMObjective

__all__ = [
    "CausalLMObjective",
    "MaskedLMObjective",
    "batch_loss",
    "jvp_directional",
    "parameter_gradients",
    "per_example_gradient_dot",
    "plain_parameter_gradients",
    "position_losses",
    "resolve_objective",
    "row_losses",
]

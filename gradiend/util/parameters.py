"""Parameters by name, under every name they have.

``dict(model.named_parameters())`` lists a tied parameter once, under the name of the module that
registers it first, and that order is the model class's choice: in transformers 5 XLM-RoBERTa
registers its ``lm_head`` before ``roberta``, so the input embedding it shares with the head appears
only as ``lm_head.decoder.weight``. A lookup by name must not depend on that order.
"""
from __future__ import annotations

import torch


def parameters_by_name(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """``{name: parameter}`` for every name of every parameter, tied aliases included."""
    return dict(model.named_parameters(remove_duplicate=False))

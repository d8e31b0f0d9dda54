"""How much a rewrite damages the model on neutral text: LMS, KL to the base model, (pseudo-)perplexity.

Three measures per scored model, each on the LMS's neutral texts (:mod:`.lms`) and each with a
percentile-bootstrap interval over the texts (:func:`gradiend.evaluation.bias.scores.bootstrap_ci`):

* ``lms``: the language modelling score, exactly as :mod:`.lms` computes it;
* ``kl``: mean ``KL(P_base ‖ P_model)`` (nats) of the token distribution at a position, over the
  positions below; 0 for the base model itself;
* ``perplexity``: ``exp(mean NLL)`` of the true tokens at those positions.

Masked LM: the positions are the LMS's seeded masked positions (15 % of each text's non-special
tokens), each masked **alone** (the text's other tokens stay visible), so ``perplexity`` is the
pseudo-perplexity (Salazar et al., 2020) over that sample of positions and ``kl`` compares the
masked-token distributions ``P(· | text with that token masked)``.
Causal LM: ``perplexity`` is over every next-token position the LMS scores; ``kl`` compares the
next-token distributions at a seeded 15 % of them (the same share as the masked LM's; storing the
base distribution at every position would cost positions × vocabulary floats).

The base model is scored once, when the scorer is built from the unmodified model: that one pass
gives its own measures (:attr:`DamageScorer.base`, KL 0) and keeps its logits at the KL positions on
the CPU (positions × vocabulary float32 values); every later model is compared against them.
"""
from __future__ import annotations

import math
import random
from typing import Callable

import numpy as np
import torch

from gradiend.evaluation.bias.scores import CONFIDENCE, bootstrap_ci
from gradiend.evaluation.lms import DEFAULT_MASK_RATIO, DEFAULT_SEED, CAUSAL, MASKED, CausalLMS, MaskedLMS, \
    single_mask_logits
from gradiend.util.eval_mode import eval_mode

DEFAULT_BOOTSTRAP = 1000
PERPLEXITY = "perplexity"
PSEUDO_PERPLEXITY = "pseudo-perplexity"


def kl_divergence(base_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(base) ‖ softmax(logits))`` per row, in float64."""
    base = torch.log_softmax(base_logits.double(), dim=-1)
    other = torch.log_softmax(logits.double(), dim=-1)
    return (base.exp() * (base - other)).sum(dim=-1)


def sampled_positions(counts, ratio: float, seed: int) -> list[list[int]]:
    """Per text, ``max(1, int(ratio · n))`` of its ``n`` candidate indices (sorted), drawn with one
    ``random.Random(seed)`` in text order; none for a text without candidates."""
    rng = random.Random(seed)
    return [sorted(rng.sample(range(n), max(1, int(ratio * n)))) if n else [] for n in counts]


class DamageScorer:
    """LMS, KL to the base model and (pseudo-)perplexity of any model on the LMS scorer's texts.

    ``lms`` is a prepared :class:`~.lms.MaskedLMS` or :class:`~.lms.CausalLMS`; ``base_model`` must be
    the unmodified model when the scorer is built (its logits are the KL reference, and :attr:`base`
    holds its own measures).
    """

    def __init__(self, lms: MaskedLMS | CausalLMS, base_model, *, seed: int = DEFAULT_SEED,
                 kl_ratio: float = DEFAULT_MASK_RATIO, bootstrap: int = DEFAULT_BOOTSTRAP):
        """``kl_ratio``: the share of a causal text's scored positions that the KL compares (a masked
        LM compares at the LMS's own positions)."""
        if not isinstance(lms, (MaskedLMS, CausalLMS)):
            raise TypeError(f"expected a MaskedLMS or CausalLMS, got {type(lms).__name__}")
        self.lms = lms
        self.kind = MASKED if isinstance(lms, MaskedLMS) else CAUSAL
        self.bootstrap, self.seed = bootstrap, seed
        self.n_texts = len(lms.rows)
        if self.kind == MASKED:
            # one job per LMS position, (text, position), in length order so that batches pad little
            jobs = [(i, p) for i, positions in enumerate(lms.positions) for p in positions]
            self.jobs = sorted(jobs, key=lambda job: len(lms.rows[job[0]]))
        else:  # indices into each text's scored next-token positions (every token after the first, not ignored)
            ignored = set(lms.ignored.tolist())
            self.kl_positions = sampled_positions([sum(t not in ignored for t in row[1:]) for row in lms.rows],
                                                  kl_ratio, seed)
        self.base_logits: torch.Tensor | None = None  # filled by the first pass, over the base model
        self.base = self(base_model)

    # ------------------------------------------------------------------ passes
    def _masked_pass(self, model, visit: Callable[[list, torch.Tensor], None]) -> None:
        """Call ``visit(jobs, logits at the one masked position)`` batch by batch."""
        lms = self.lms
        with eval_mode(model):
            for batch, logits in single_mask_logits(model, lms.rows, self.jobs, lms.mask_id, lms.pad_id,
                                                    lms.batch_size):
                visit(batch, logits)

    def _at_kl_positions(self, logits: torch.Tensor, scored: torch.Tensor, text: int) -> torch.Tensor:
        """A causal text's logits at its sampled KL positions (indices into its scored positions)."""
        return logits[scored.nonzero().flatten()[self.kl_positions[text]]]

    # ------------------------------------------------------------------ per text
    def per_text(self, model) -> dict[str, np.ndarray]:
        """Per text: ``lms_num``/``lms_den`` (correct masks and masks; causal: NLL sum and tokens, the
        LMS's own numbers), ``nll``/``nll_count`` (the perplexity's), ``kl``/``kl_count``."""
        n = self.n_texts
        out = {k: np.zeros(n) for k in ("nll", "nll_count", "kl", "kl_count")}
        offset, reference = 0, []

        def kl_to_base(logits: torch.Tensor) -> torch.Tensor:
            """KL of the next KL positions' logits to the base's; the base's own pass keeps them (KL 0)."""
            nonlocal offset
            if self.base_logits is None:
                reference.append(logits)
                return torch.zeros(len(logits), dtype=torch.float64)
            kl = kl_divergence(self.base_logits[offset: offset + len(logits)], logits)
            offset += len(logits)
            return kl

        def add(texts, nll, kl):
            np.add.at(out["nll"], texts, nll)
            np.add.at(out["nll_count"], texts, 1.0)
            np.add.at(out["kl"], texts, kl)
            np.add.at(out["kl_count"], texts, 1.0)

        if self.kind == MASKED:
            correct = self.lms.correct_per_text(model)
            out["lms_num"] = np.array(correct if correct is not None else [math.nan] * n, dtype=float)
            out["lms_den"] = np.array([len(p) for p in self.lms.positions], dtype=float)

            def visit(batch, logits):
                originals = torch.tensor([self.lms.rows[i][p] for i, p in batch])
                nll = -torch.log_softmax(logits.double(), dim=-1)[torch.arange(len(batch)), originals]
                add([i for i, _ in batch], nll.numpy(), kl_to_base(logits).numpy())

            self._masked_pass(model, visit)
        else:
            out["lms_num"], out["lms_den"] = np.zeros(n), np.zeros(n)
            for batch, predicted_from, targets, scored in self.lms.batches(model):
                nll = self.lms.token_nll(predicted_from, targets, scored)
                for r, i in enumerate(batch):
                    out["lms_num"][i], out["lms_den"][i] = float(nll[r].sum()), float(scored[r].sum())
                    kl = kl_to_base(self._at_kl_positions(predicted_from[r], scored[r], i))
                    out["kl"][i], out["kl_count"][i] = float(kl.sum()), len(kl)
            out["nll"], out["nll_count"] = out["lms_num"].copy(), out["lms_den"].copy()
        if self.base_logits is None:
            self.base_logits = torch.cat(reference) if reference else torch.zeros(0)
        return out

    # ------------------------------------------------------------------ statistics
    def statistics(self, per_text: dict[str, np.ndarray]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Measure name → statistic of a ``(..., n)`` index array into the texts (the bootstrap's form)."""
        def ratio(num, den):
            return lambda idx: per_text[num][idx].sum(axis=-1) / np.maximum(per_text[den][idx].sum(axis=-1), 1e-300)

        lms_ratio = ratio("lms_num", "lms_den")
        lms = lms_ratio if self.kind == MASKED else (lambda idx: 1.0 / (1.0 + lms_ratio(idx)))
        nll = ratio("nll", "nll_count")
        return {"lms": lms, "kl": ratio("kl", "kl_count"), "perplexity": lambda idx: np.exp(nll(idx))}

    def __call__(self, model) -> dict:
        """``{"lms", "lms_details", "kl", "perplexity", "damage"}`` of ``model``: the three measures, the
        LMS scorer's own details, and ``damage`` (``kind`` of perplexity, counts, ``ci`` per measure)."""
        per_text = self.per_text(model)
        if self.kind == MASKED:
            correct = per_text["lms_num"]
            lms_details = self.lms.summary(None if np.isnan(correct).any() else [int(c) for c in correct])
        else:
            lms_details = self.lms.summary(per_text["lms_num"].tolist(), [int(c) for c in per_text["lms_den"]])
        everything = np.arange(self.n_texts)
        finite = all(np.isfinite(column).all() for column in per_text.values())
        values, intervals = {}, {}
        for name, statistic in self.statistics(per_text).items():
            values[name] = lms_details["lms"] if name == "lms" else float(statistic(everything))
            intervals[name] = bootstrap_ci(statistic, self.n_texts, self.bootstrap, self.seed) if finite else None
        damage = {"perplexity_kind": PSEUDO_PERPLEXITY if self.kind == MASKED else PERPLEXITY,
                  "n_texts": self.n_texts, "n_kl_positions": int(per_text["kl_count"].sum()),
                  "n_perplexity_tokens": int(per_text["nll_count"].sum()),
                  "bootstrap": self.bootstrap, "confidence": CONFIDENCE, "ci": intervals}
        return {"lms": values["lms"], "lms_details": lms_details, "kl": values["kl"],
                "perplexity": values["perplexity"], "damage": damage}

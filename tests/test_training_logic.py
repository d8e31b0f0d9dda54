"""Scheduler order, convergence rule, normalisation, best checkpoint, seed selection, pruning maths."""
import json
import math

import numpy as np
import pytest
import torch

from gradiend.model.topk import keep_mask, resolve_topk
from gradiend.training.convergence import BestCheckpoint, assess_convergence, should_normalise
from gradiend.training.pruning import PrePruneResult, split_flat, stratified_sample
from gradiend.training.scheduler import BatchScheduler
from gradiend.training.seeds import (SeedRun, build_seed_report, check_enough_convergent, run_seeds,
                                     select_best_seed)

# --- scheduler -------------------------------------------------------------------------------


def _rows(n0, n1, n_identity=0):
    fids = [0] * n0 + [1] * n1 + [2] * n_identity
    labels = [1] * n0 + [-1] * n1 + [0] * n_identity
    return fids, labels


def test_scheduler_round_robin_single_label_batches():
    fids, labels = _rows(10, 4, 6)
    sched = BatchScheduler(fids, labels, batch_size=2, seed=0)
    assert sched.batches_per_epoch == 5 + 2 + 3
    for step in range(30):
        batch = sched.batch(step)
        assert len(batch) == 2
        assert {fids[i] for i in batch} == {step % 3}  # transitions alternate 0, 1, 2, 0, …
        assert len({labels[i] for i in batch}) == 1


def test_scheduler_cycles_every_batch_of_large_groups():
    fids, labels = _rows(10, 2)
    sched = BatchScheduler(fids, labels, batch_size=2, seed=3)
    seen = {tuple(sorted(sched.batch(s))) for s in range(0, 20, 2)}  # steps of transition 0
    assert len(seen) == 5  # all 5 batches of the large group are reached, not just one epoch's worth
    assert sched.batch(0).tolist() == sched.batch(10).tolist()  # period = 2 groups x 5 batches


def test_scheduler_keys_used_cover_the_steps():
    fids, labels = _rows(10, 4, 6)
    sched = BatchScheduler(fids, labels, batch_size=2, seed=0)
    assert len(sched.keys_used(1000)) == sched.batches_per_epoch == 10
    assert sched.keys_used(4) == [sched.key(s) for s in range(4)]
    for step in range(40):
        assert sched.rows_of(sched.key(step)).tolist() == sched.batch(step).tolist()


def test_scheduler_deterministic_and_seed_dependent():
    fids, labels = _rows(40, 40)
    a = [BatchScheduler(fids, labels, 4, seed=7).batch(s).tolist() for s in range(20)]
    b = [BatchScheduler(fids, labels, 4, seed=7).batch(s).tolist() for s in range(20)]
    c = [BatchScheduler(fids, labels, 4, seed=8).batch(s).tolist() for s in range(20)]
    assert a == b and a != c


def test_scheduler_drops_remainder_and_splits_by_label():
    fids = [0] * 7
    labels = [1, 1, 1, 1, 0, 0, 0]
    sched = BatchScheduler(fids, labels, batch_size=3, seed=0)
    assert sched.batches_per_epoch == 2  # 4 → 1 batch, 3 → 1 batch
    used = {i for s in range(2) for i in sched.batch(s)}
    assert len(used) == 6


def test_scheduler_small_group_is_clear_error():
    fids, labels = _rows(10, 3)
    with pytest.raises(ValueError, match=r"she→he.*3 training rows.*train_batch_size=4"):
        BatchScheduler(fids, labels, batch_size=4, seed=0, group_names={1: "she→he"})


def test_scheduler_batch_size_one_keeps_data_order():
    fids, labels = _rows(3, 3)
    sched = BatchScheduler(fids, labels, 1, seed=0)
    assert [int(sched.batch(s)[0]) for s in range(6)] == [0, 3, 1, 4, 2, 5]


# --- convergence -----------------------------------------------------------------------------

CLASSES = ("she", "he")


@pytest.mark.parametrize("best_step, corr, means, ok, reason", [
    (10, 0.9, {"she": 0.8, "he": -0.7}, True, "converged"),
    (10, -0.9, {"she": -0.8, "he": 0.7}, True, "converged"),
    (None, None, {}, False, "step 0"),
    (0, 0.9, {"she": 0.8, "he": -0.7}, False, "step 0"),
    (10, 0.49, {"she": 0.8, "he": -0.7}, False, "correlation"),
    (10, 0.9, {"she": 0.8, "he": -0.3}, False, "'he'"),
    (10, 0.9, {"she": 0.8, "he": 0.9}, False, "opposite"),
    (10, 0.9, {"she": 0.8}, False, "he"),
])
def test_convergence_rule(best_step, corr, means, ok, reason):
    info = assess_convergence(best_step, corr, means, CLASSES, 0.5, 0.5)
    assert info.converged is ok
    assert reason in info.reason
    assert json.loads(json.dumps(info.to_dict()))["converged"] is ok


def test_convergence_thresholds_are_inclusive():
    assert assess_convergence(5, 0.5, {"she": 0.5, "he": -0.5}, CLASSES).converged


def test_normalisation_threshold():
    assert should_normalise(-0.61)
    assert not should_normalise(-0.6)
    assert not should_normalise(-0.59)
    assert not should_normalise(0.9)
    assert not should_normalise(-0.9, enabled=False)
    assert not should_normalise(-0.9, latent_dim=2)
    assert not should_normalise(float("nan"))
    assert not should_normalise(-0.9, activation_encoder="relu")


def test_best_checkpoint_never_step_zero():
    best = BestCheckpoint()
    assert not best.update(0, 0.99)
    assert best.step is None
    assert best.update(10, -0.3)
    assert not best.update(20, 0.3)  # ties keep the earlier step
    assert best.update(30, 0.5)
    assert not best.update(40, float("nan"))
    assert (best.step, best.correlation) == (30, 0.5)


# --- seeds -----------------------------------------------------------------------------------


def test_select_best_seed_prefers_convergent():
    runs = [SeedRun(0, False, 0.95), SeedRun(1, True, 0.7), SeedRun(2, True, -0.8), SeedRun(3, True, 0.8)]
    best, strategy = select_best_seed(runs)
    assert (best.seed, strategy) == (2, "best_convergent")  # |−0.8| ties 0.8, earlier seed wins
    best, strategy = select_best_seed([SeedRun(0, False, 0.3), SeedRun(1, False, 0.4, eval_score=0.1)])
    assert (best.seed, strategy) == (0, "best_non_convergent")  # eval score wins over training score
    with pytest.raises(ValueError):
        select_best_seed([])


def test_run_seeds_stops_at_min_convergent_and_reports():
    outcomes = {5: False, 6: True, 7: True}
    calls = []

    def train_one(seed):
        calls.append(seed)
        return SeedRun(seed, outcomes[seed], 0.9 if outcomes[seed] else 0.2, model_dir=f"seed_{seed}")

    runs, reason = run_seeds(train_one, [5, 6, 7], min_convergent_seeds=1)
    assert calls == [5, 6] and "min_convergent_seeds=1" in reason
    report = build_seed_report(runs, max_seeds=3, min_convergent_seeds=1, score_threshold=0.5,
                               mean_by_class_threshold=0.5, early_stop_reason=reason)
    assert report["seeds_tried"] == [5, 6] and report["convergent_seeds"] == [6]
    assert report["best_seed"] == 6 and report["best_seed_selection_strategy"] == "best_convergent"
    assert report["runs"][1]["selection_score"] == 0.9
    json.dumps(report)
    runs, reason = run_seeds(train_one, [5, 6, 7], min_convergent_seeds=None)
    assert [r.seed for r in runs] == [5, 6, 7] and reason is None


def test_check_enough_convergent(caplog):
    runs = [SeedRun(0, False, 0.1), SeedRun(1, True, 0.9)]
    with caplog.at_level("WARNING", logger="gradiend"):
        check_enough_convergent(runs, 1, fail=True)
    assert caplog.records == []  # enough: silent
    with pytest.raises(RuntimeError, match="1 of 2"):
        check_enough_convergent(runs, 2, fail=True)
    with caplog.at_level("WARNING", logger="gradiend"):
        check_enough_convergent(runs, 2, fail=False)  # warns only
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "only 1 of 2 seed(s) converged" in caplog.text and "best non-convergent seed" in caplog.text


# --- pruning maths ---------------------------------------------------------------------------


def test_resolve_topk():
    assert resolve_topk(0.1, 95) == 10  # fractions round up
    assert resolve_topk(5, 3) == 3
    assert resolve_topk(1.0, 7) == 7


def test_keep_mask_topk_threshold_and_ties():
    imp = torch.tensor([0.1, 0.5, 0.3, 0.5, 0.0, 0.9])
    # tie → lower index
    assert keep_mask(imp, imp.numel(), topk=2).tolist() == [False, True, False, False, False, True]
    assert keep_mask(imp, imp.numel(), topk=3).nonzero().flatten().tolist() == [1, 3, 5]
    assert keep_mask(imp, imp.numel(), threshold=0.3).nonzero().flatten().tolist() == [1, 2, 3, 5]
    # threshold first, then a fraction of the survivors (ceil(0.5·4) = 2)
    assert keep_mask(imp, imp.numel(), topk=0.5, threshold=0.3).nonzero().flatten().tolist() == [1, 5]
    assert keep_mask(imp, imp.numel(), topk=100).all()
    with pytest.raises(ValueError):
        keep_mask(imp, imp.numel())


def test_keep_mask_matches_sort_on_random_data():
    gen = torch.Generator().manual_seed(0)
    imp = torch.rand(10_000, generator=gen).round(decimals=2)  # many ties
    mask = keep_mask(imp, imp.numel(), topk=137)
    order = sorted(range(imp.numel()), key=lambda i: (-float(imp[i]), i))[:137]
    assert mask.sum() == 137 and set(mask.nonzero().flatten().tolist()) == set(order)


def test_stratified_sample():
    fids = [0] * 10 + [1] * 3 + [2] * 5
    picked = stratified_sample(fids, 9, seed=1)
    counts = np.bincount([fids[i] for i in picked], minlength=3)
    assert counts.tolist() == [5, 4, 0]  # remainder to the first transition, with replacement for the short one
    assert picked == stratified_sample(fids, 9, seed=1)
    assert len(set(i for i in picked if fids[i] == 0)) == 5
    with pytest.raises(ValueError, match="feature_class_id=1"):
        stratified_sample([0, 0, 2], 4, seed=0)


def test_pre_prune_result_round_trip(tmp_path):
    importance = {"b.weight": torch.rand(2, 3), "a.bias": torch.rand(4)}
    mask = {n: keep_mask(t.flatten(), t.numel(), topk=2).reshape(t.shape) for n, t in importance.items()}
    result = PrePruneResult.from_masks(mask, importance)
    result.save(tmp_path)
    loaded = PrePruneResult.load(tmp_path).ordered_as(["b.weight", "a.bias"])
    assert list(loaded.mask) == ["b.weight", "a.bias"]
    assert torch.equal(loaded.flat_mask(), result.flat_mask()) and loaded.n_kept == 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_kept"] == 4 and summary["n_total"] == 10
    with pytest.raises(ValueError, match="missing"):
        loaded.ordered_as(["b.weight"] + ["c"])


def test_split_flat():
    parts = split_flat(torch.arange(10.0), {"x": torch.Size([2, 3]), "y": torch.Size([4])})
    assert parts["x"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and parts["y"].tolist() == [6.0, 7.0, 8.0, 9.0]
    with pytest.raises(ValueError):
        split_flat(torch.arange(9.0), {"x": torch.Size([2, 3]), "y": torch.Size([4])})
    assert math.isclose(float(parts["x"].sum()), 15.0)

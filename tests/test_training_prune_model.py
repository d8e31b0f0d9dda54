"""Pre-pruning on a tiny masked LM: one-backward importance equals the mean of per-row gradients."""
import pytest
import torch

from gradiend.objectives import MaskedLMObjective, plain_parameter_gradients
from gradiend.training.arguments import PrePruneConfig
from gradiend.training.pruning import compute_pre_prune_mask, stratified_sample
from gradiend.data.rows import training_rows
from tests.training_support import she_he_table


@pytest.fixture(scope="module")
def tiny_bert(tiny_masked_lm_dir):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(tiny_masked_lm_dir, attn_implementation="eager").eval()
    model = model.to(torch.float64)
    return model, AutoTokenizer.from_pretrained(tiny_masked_lm_dir)


@pytest.mark.parametrize("source", ["alternative", "diff"])
def test_importance_is_abs_mean_of_per_row_gradients(tiny_bert, demo_corpus, source):
    model, tokenizer = tiny_bert
    params = {n: p for n, p in model.named_parameters() if n.startswith("bert.encoder.layer.1.")}
    rows = training_rows(she_he_table(demo_corpus, 60), ["she", "he"], "alternative", add_identity=False,
                         max_size=None, seed=0).frame
    config = PrePruneConfig(n_samples=6, topk=50, source=source, seed=3)
    objective = MaskedLMObjective()
    result = compute_pre_prune_mask(model, tokenizer, objective, params, rows, config, seed=0)

    picked = stratified_sample(rows["feature_class_id"].tolist(), 6, seed=3)
    total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    for i in picked:
        row = rows.iloc[[i]]
        batch = objective.prepare(tokenizer, row.masked.tolist(), row.factual.tolist(), row.alternative.tolist())
        grads = plain_parameter_gradients(model, params, objective, batch, [source], "rows", dtype=None)[source]
        for n in params:
            total[n] += grads[n]
    for n in params:
        expected = (total[n] / len(picked)).abs().float()
        torch.testing.assert_close(result.importance[n], expected, rtol=1e-5, atol=1e-7)

    flat = torch.cat([result.importance[n].reshape(-1) for n in params])
    kept = result.flat_mask()
    assert int(kept.sum()) == 50 == result.n_kept
    assert float(flat[kept].min()) >= float(flat[~kept].max())  # the top-50 of |mean gradient|


def test_pre_prune_chunks_agree_with_single_backward(tiny_bert, demo_corpus):
    model, tokenizer = tiny_bert
    params = {n: p for n, p in model.named_parameters() if n.startswith("bert.encoder.layer.0.output")}
    rows = training_rows(she_he_table(demo_corpus, 60), ["she", "he"], "alternative", add_identity=False,
                         max_size=None, seed=0).frame
    one = compute_pre_prune_mask(model, tokenizer, MaskedLMObjective(), params, rows,
                                 PrePruneConfig(n_samples=8, topk=0.1, batch_size=8), seed=0)
    chunked = compute_pre_prune_mask(model, tokenizer, MaskedLMObjective(), params, rows,
                                     PrePruneConfig(n_samples=8, topk=0.1, batch_size=3), seed=0)
    for n in params:
        torch.testing.assert_close(one.importance[n], chunked.importance[n], rtol=1e-6, atol=1e-9)

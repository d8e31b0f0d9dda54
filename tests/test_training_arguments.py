"""TrainingArguments / pruning configs: defaults and one clear error per bad value."""
import pytest

from gradiend.training.arguments import PostPruneConfig, PrePruneConfig, TrainingArguments


def test_defaults_match_reference():
    args = TrainingArguments()
    assert (args.train_batch_size, args.eval_batch_size, args.max_steps, args.num_train_epochs) == (32, 32, -1, 3)
    assert (args.learning_rate, args.weight_decay, args.adam_epsilon) == (1e-5, 1e-2, 1e-8)
    assert (args.source, args.target, args.max_seeds, args.min_convergent_seeds) == ("alternative", "diff", 3, None)
    assert (args.convergent_score_threshold, args.convergent_mean_by_class_threshold) == (0.5, 0.5)
    assert args.trust_remote_code is False and args.normalize_gradiend is True
    pre, post = PrePruneConfig(), PostPruneConfig()
    assert (pre.n_samples, pre.topk, pre.threshold, pre.source, pre.batch_size) == (8, 0.1, None, "alternative", 8)
    assert (post.topk, post.threshold, post.part) == (0.01, None, "decoder-weight")


@pytest.mark.parametrize("kwargs, field", [
    ({"source": "gradient"}, "source"),
    ({"target": "both"}, "target"),
    ({"train_batch_size": 0}, "train_batch_size"),
    ({"eval_batch_size": -4}, "eval_batch_size"),
    ({"learning_rate": "1e-5"}, "learning_rate"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"max_steps": 0}, "max_steps"),
    ({"max_seeds": 2, "min_convergent_seeds": 3}, "min_convergent_seeds"),
    ({"min_convergent_seeds": 0}, "min_convergent_seeds"),
    ({"optim": "sgd"}, "optim"),
    ({"convergent_score_threshold": 1.5}, "convergent_score_threshold"),
    ({"torch_dtype": "int8"}, "torch_dtype"),
    ({"params": "bert.*"}, "params"),
])
def test_invalid_training_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainingArguments(**kwargs)


def test_yaml_string_number_hint():
    with pytest.raises(ValueError, match="1.0e-5"):
        TrainingArguments(learning_rate="1e-5")


@pytest.mark.parametrize("kwargs, match", [
    ({"topk": None, "threshold": None}, "topk .* or threshold"),
    ({"topk": 0}, "topk"),
    ({"topk": 1.5}, "topk"),
    ({"topk": -0.1}, "topk"),
    ({"source": "weights"}, "source"),
    ({"n_samples": 0}, "n_samples"),
    ({"topk": 50, "keep_top_k": 1000}, "keep_top_k"),
])
def test_invalid_pre_prune(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrePruneConfig(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"part": "decoder"}, "part"),
    ({"topk": None}, "topk .* or threshold"),
    ({"topk": 2.0}, "topk"),
])
def test_invalid_post_prune(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PostPruneConfig(**kwargs)


def test_keep_top_k_is_alias_of_topk():
    assert PrePruneConfig(keep_top_k=1000).topk == 1000
    assert PrePruneConfig(keep_top_k=0.05).topk == 0.05
    assert PostPruneConfig(keep_top_k=500).topk == 500
    assert TrainingArguments(post_prune_config={"keep_top_k": 7}).post_prune_config.topk == 7
    with pytest.raises(ValueError, match="keep_top_k=5 and topk=6 conflict"):
        PostPruneConfig(keep_top_k=5, topk=6)


def test_importance_metric_maps_onto_what_is_computed():
    assert PrePruneConfig(importance_metric="gradient_norm").importance_metric == "gradient_norm"
    with pytest.raises(ValueError, match="weight metrics need a trained GRADIEND"):
        PrePruneConfig(importance_metric="weight_magnitude")
    with pytest.raises(ValueError, match="importance_metric='gradient_mean'"):
        PrePruneConfig(importance_metric="gradient_mean")
    assert PostPruneConfig(importance_metric="weight_magnitude").part == "decoder-weight"
    assert PostPruneConfig(importance_metric="encoder-weight", keep_top_k=3).part == "encoder-weight"
    assert PostPruneConfig().part == "decoder-weight"
    with pytest.raises(ValueError, match="conflicts with part='decoder-sum'"):
        PostPruneConfig(importance_metric="weight_magnitude", part="decoder-sum")
    with pytest.raises(ValueError, match="importance_metric='gradient_norm'"):
        PostPruneConfig(importance_metric="gradient_norm")


def test_pruning_configs_from_mappings_and_round_trip():
    args = TrainingArguments(pre_prune_config={"topk": 100, "n_samples": 4}, post_prune_config={"topk": 0.5},
                             torch_dtype="bfloat16", max_steps=10)
    assert isinstance(args.pre_prune_config, PrePruneConfig) and args.pre_prune_config.topk == 100
    assert isinstance(args.post_prune_config, PostPruneConfig)
    again = TrainingArguments.from_dict(args.to_dict())
    assert again == args
    with pytest.raises(ValueError, match="pre_prune_config.*unknown"):
        TrainingArguments(pre_prune_config={"importance": "gradient_norm"})
    with pytest.raises(ValueError, match="unknown key"):
        TrainingArguments.from_dict({"convergence_threshold": 0.6})


def test_max_steps_not_capped_by_epochs():
    args = TrainingArguments(max_steps=500, num_train_epochs=1)
    assert args.total_steps(batches_per_epoch=10) == 500
    assert TrainingArguments(num_train_epochs=2).total_steps(batches_per_epoch=10) == 20

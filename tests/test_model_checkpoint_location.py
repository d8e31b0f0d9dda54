"""A GRADIEND checkpoint finds its base model after the results folder moves; feature_definition sets directions."""
import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from gradiend import FeatureLearningDefinition
from gradiend.model.base_reference import BaseModelLocationError, make_reference, sha256_file
from gradiend.model.text import TextModelWithGradiend
from gradiend.model.with_gradiend import ModelWithGradiend


@pytest.fixture
def tree(tiny_masked_lm_dir, tmp_path):
    """results/models/tiny-bert + results/exp/ckpt (a pruned GRADIEND saved over that base model)."""
    root = tmp_path / "results"
    base = shutil.copytree(tiny_masked_lm_dir, root / "models" / "tiny-bert")
    torch.manual_seed(0)
    model = ModelWithGradiend.from_pretrained(str(base), feature_class_encoding_direction={"she": 1, "he": -1})
    model.prune_gradiend(topk=50)
    model.save_pretrained(root / "exp" / "ckpt")
    return root, model


def _config(ckpt):
    return json.loads((ckpt / "config.json").read_text())


def _same_gradiend(a, b):
    return all(torch.equal(t, b.gradiend.state_dict()[n]) for n, t in a.gradiend.state_dict().items())


def test_moved_results_folder_still_loads(tree, tmp_path):
    root, model = tree
    meta = _config(root / "exp" / "ckpt")["metadata"]
    assert meta["base_model"] == "../../models/tiny-bert"
    assert meta["base_model_reference"]["sha256"] == {
        "model.safetensors": sha256_file(root / "models" / "tiny-bert" / "model.safetensors")}
    moved = shutil.move(str(root), str(tmp_path / "elsewhere" / "results"))
    loaded = ModelWithGradiend.from_pretrained(f"{moved}/exp/ckpt")
    assert type(loaded) is TextModelWithGradiend
    assert loaded.base_model_id == f"{moved}/models/tiny-bert"
    assert _same_gradiend(model, loaded)
    # a copy at another depth of the same tree (seeds/0/model -> best/model) finds it below an ancestor
    deeper = shutil.copytree(f"{moved}/exp/ckpt", f"{moved}/exp/seeds/0/model")
    assert ModelWithGradiend.from_pretrained(deeper).base_model_id == f"{moved}/models/tiny-bert"


def test_missing_or_changed_base_model_is_a_clear_error(tree):
    root, _ = tree
    ckpt = root / "exp" / "ckpt"
    weights = root / "models" / "tiny-bert" / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-4] + b"    ")  # same file, other weights
    with pytest.raises(BaseModelLocationError, match=r"different SHA-256"):
        ModelWithGradiend.from_pretrained(ckpt)
    weights.write_bytes(original)
    shutil.rmtree(root / "models")
    with pytest.raises(BaseModelLocationError) as err:
        ModelWithGradiend.from_pretrained(ckpt)
    message = str(err.value)
    assert str(ckpt.resolve()) in message and str(root.resolve() / "models" / "tiny-bert") in message


def test_old_absolute_checkpoints_and_hub_ids(tree, tiny_masked_lm_dir):
    root, model = tree
    ckpt = root / "exp" / "ckpt"
    config = _config(ckpt)
    config["metadata"]["base_model"] = str(tiny_masked_lm_dir.resolve())  # format before this change
    del config["metadata"]["base_model_reference"]
    (ckpt / "config.json").write_text(json.dumps(config))
    loaded = ModelWithGradiend.from_pretrained(ckpt)
    assert loaded.base_model_id == str(tiny_masked_lm_dir.resolve()) and _same_gradiend(model, loaded)
    config["metadata"]["base_model"] = str(root / "gone")
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(BaseModelLocationError, match=rf"{ckpt.resolve()}.*absolute path {root / 'gone'}"):
        ModelWithGradiend.from_pretrained(ckpt)
    assert make_reference("org/some-model", ckpt) == ("org/some-model", None)  # a hub id stays an id


def test_feature_definition_sets_directions(tiny_masked_lm_dir, tree):
    definition = SimpleNamespace(pair=("3SG", "3PL"), classes=["1SG", "3SG", "3PL"])
    model = ModelWithGradiend.from_pretrained(str(tiny_masked_lm_dir), feature_definition=definition)
    assert model.feature_class_encoding_direction == {"1SG": 0, "3SG": 1, "3PL": -1}
    root, _ = tree  # saved with {"she": 1, "he": -1}
    same = ModelWithGradiend.from_pretrained(root / "exp" / "ckpt", feature_definition=SimpleNamespace(pair=["she", "he"]))
    assert same.feature_class_encoding_direction == {"she": 1, "he": -1}
    with pytest.raises(ValueError, match="class 'he' direction \\+1, but the model has -1"):
        ModelWithGradiend.from_pretrained(root / "exp" / "ckpt", feature_definition=SimpleNamespace(pair=["he", "she"]))
    documented = FeatureLearningDefinition(pair=("3SG", "3PL"), classes=("3SG", "3PL", "1SG"))
    assert ModelWithGradiend.from_pretrained(str(tiny_masked_lm_dir), feature_definition=documented
                                             ).feature_class_encoding_direction == {"3SG": 1, "3PL": -1, "1SG": 0}
    with pytest.raises(ValueError, match="`pair` of two classes"):
        ModelWithGradiend.from_pretrained(str(tiny_masked_lm_dir), feature_definition=SimpleNamespace(pair="she"))

"""Bad input files, models and intermediate files (issue 11): each case is one error that names the
file, folder, word or rule (and what to do), raised before the stage does its heavy work, and no
finished output of the experiment is touched. Also: outputs follow the user's umask."""
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from gradiend import stages
from tests.reliability_support import finished, tiny_run  # noqa: F401 (finished is a fixture)


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_corpus, tiny_masked_lm_dir):
    stage_run = tiny_run(tiny_masked_lm_dir, demo_corpus[:1000], tmp_path_factory.mktemp("bad_files"))
    stage_run.data()
    stage_run.train(0)
    return stage_run


def create_training_data(run, texts, cut=None):
    stages.create_training_data(cut or run.cut("create_training_data"), texts=str(texts),
                                training=run.path("data", "training.parquet"), summary=run.path("data", "summary.json"))


def train_seed(run, cut=None, training=None):
    stages.train_seed(cut or run.cut("train_seed"), seed=0, training=training or run.path("data", "training.parquet"),
                      mask=None, model=run.path("seeds", "0", "model"), convergence=run.path("seeds", "0", "convergence.png"))


def evaluate_encoder(run, model):
    folder = ("seeds", "0", "encoder")
    stages.evaluate_encoders(run.cut("evaluate_encoders"), seeds=[0], models=[str(model)],
                             training=run.path("data", "training.parquet"), neutral=run.path("data", "neutral.parquet"),
                             metrics=[run.path(*folder, "metrics.json")], encoded=[run.path(*folder, "encoded.parquet")],
                             distributions=[run.path(*folder, "distributions.png")])


# --- raw text files -------------------------------------------------------------------------------

def test_zero_byte_csv(run, finished, tmp_path):
    empty = tmp_path / "texts.csv"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{empty} is empty \(0 bytes\)"):
        create_training_data(run, empty)


def test_header_only_csv(run, finished, tmp_path):
    header = tmp_path / "texts.csv"
    header.write_text("text\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{header} has a header \(\['text'\]\) but no rows"):
        create_training_data(run, header)


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_text_that_is_not_utf8(run, finished, tmp_path, suffix):
    latin = tmp_path / f"texts{suffix}"
    lines = run_corpus_lines(run)[:200] + ["She said caf\u00e9 twice."]
    text = pd.DataFrame({"text": lines}).to_csv(index=False) if suffix == ".csv" else "\n".join(lines)
    latin.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError) as error:
        create_training_data(run, latin)
    message = str(error.value)
    assert f"{latin} is not UTF-8 text" in message and "byte 0xe9" in message and "iconv -f latin1 -t utf-8" in message


def run_corpus_lines(run) -> list[str]:
    return Path(run.corpus).read_text(encoding="utf-8").splitlines()


def test_texts_with_the_mask_token_are_dropped_and_counted(run, tmp_path, caplog):
    corpus = tmp_path / "corpus.txt"
    poisoned = ["She told him [MASK] was late.", "He said [MASK] and she laughed."] * 3
    corpus.write_text("\n".join(run_corpus_lines(run) + poisoned) + "\n", encoding="utf-8")
    training = tmp_path / "training.parquet"
    with caplog.at_level(logging.WARNING, logger="gradiend"):
        stages.create_training_data(run.cut("create_training_data"), texts=str(corpus), training=str(training),
                                    summary=str(tmp_path / "summary.json"))
    assert f"{corpus}: dropped 6 of {len(run_corpus_lines(run)) + 6} text(s) that contain the mask token [MASK]" \
        in caplog.text
    table = pd.read_parquet(training)
    assert (table["masked"].str.count(r"\[MASK\]") == table["token_count"]).all()
    assert not table["text"].str.contains("[MASK]", regex=False).any()


def test_rows_with_the_mask_token_are_dropped_when_the_model_is_known(run, caplog):
    """A table made elsewhere (not by the creator) with literal mask tokens: dropped, counted."""
    from gradiend.model.loading import load_tokenizer_and_objective
    from gradiend.stages.models import fit_tables_to_tokenizer

    table = pd.read_parquet(run.path("data", "training.parquet"))
    neutral = pd.read_parquet(run.path("data", "neutral.parquet"))
    table.loc[0, "text"] = table.loc[0, "text"] + " [MASK]"                    # unmasked text holds it
    table.loc[1, "masked"] = table.loc[1, "masked"] + " [MASK]"                # one placeholder too many
    neutral.loc[0, "text"] = "A [MASK] in a neutral text."
    tokenizer, _ = load_tokenizer_and_objective(run.experiment["base_model_path"])
    with caplog.at_level(logging.WARNING, logger="gradiend"):
        kept, kept_neutral = fit_tables_to_tokenizer(run.cut("train_seed"), tokenizer, table, neutral)
    assert len(kept) == len(table) - 2 and len(kept_neutral) == len(neutral) - 1
    assert f"training data of exp: dropped 2 of {len(table)} row(s)" in caplog.text
    assert f"neutral data of exp: dropped 1 of {len(neutral)} neutral text(s)" in caplog.text


def test_a_models_own_mask_token_is_found_too():
    """RoBERTa-style ``<mask>``: in a masked text outside the placeholders, the row is dropped."""
    from types import SimpleNamespace

    from gradiend.data.mask_token import mask_rows

    table = pd.DataFrame({"masked": ["[MASK] went home.", "[MASK] saw a <mask> there."]})
    assert mask_rows(table, SimpleNamespace(mask_token="<mask>")).tolist() == [False, True]


# --- models ---------------------------------------------------------------------------------------

def test_model_folder_without_tokenizer_files(run, finished, tmp_path):
    from gradiend.model.loading import BaseModelNotAvailableError

    folder = tmp_path / "no-tokenizer"
    shutil.copytree(run.experiment["base_model_path"], folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    cut = run.cut("train_seed")
    cut["base_model_path"] = str(folder)
    with pytest.raises(BaseModelNotAvailableError) as error:
        train_seed(run, cut)
    assert f"model folder {str(folder)!r} has no tokenizer files" in str(error.value)
    assert "tokenizer.save_pretrained" in str(error.value)


def test_target_word_the_tokenizer_does_not_know(run, finished, tmp_path):
    table = pd.read_parquet(run.path("data", "training.parquet"))
    for column in ("factual", "alternative"):
        table[column] = table[column].replace({"she": "zyxwvq", "She": "Zyxwvq"})
    unknown = tmp_path / "training.parquet"
    table.to_parquet(unknown)
    with pytest.raises(ValueError) as error:
        train_seed(run, training=str(unknown))
    message = str(error.value)
    assert "'zyxwvq' (class 'F')" in message and "unknown token '[UNK]'" in message
    assert run.experiment["base_model_path"] in message  # the tokenizer is named by where it came from


# --- corrupt intermediate files -------------------------------------------------------------------

def _workflow_copy(run, tmp_path, *parts) -> Path:
    """A copy of the output ``parts`` at the same place under tmp_path/results/exp/."""
    source = Path(run.path(*parts))
    target = tmp_path / "results" / "exp" / Path(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    return target


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_training_parquet(run, finished, tmp_path):
    broken = _workflow_copy(run, tmp_path, "data", "training.parquet")
    _truncate(broken)
    with pytest.raises(ValueError) as error:
        train_seed(run, training=str(broken))
    message = str(error.value)
    assert f"{broken} is not a readable Parquet file" in message
    assert "snakemake --forcerun create_training_data" in message


def test_truncated_checkpoint_weights(run, finished, tmp_path):
    checkpoint = _workflow_copy(run, tmp_path, "seeds", "0", "model")
    _truncate(checkpoint / "model.safetensors")
    with pytest.raises(ValueError) as error:
        evaluate_encoder(run, checkpoint)
    message = str(error.value)
    assert f"{checkpoint / 'model.safetensors'} is not a readable safetensors file" in message
    assert "snakemake --forcerun train_seed" in message


def test_truncated_decoder_cell_json(run, tmp_path):
    cells = tmp_path / "results" / "exp" / "decoder" / "cells"
    cells.mkdir(parents=True)
    (cells / "base.json").write_text('{"id": "base", "lms": 0.5, "probs_by')
    summary = tmp_path / "results" / "exp" / "decoder" / "summary.json"
    with pytest.raises(ValueError) as error:
        stages.select_cell(run.cut("select_cell"), base=str(cells / "base.json"), cells=[],
                           seed_choice=run.path("best", "seed.json"), summary=str(summary),
                           plot=str(summary.with_name("shifts.png")))
    message = str(error.value)
    assert f"{cells / 'base.json'} is not a readable JSON file" in message
    assert "snakemake --forcerun decoder_grid` (`decoder_cell` when the jobs fan out)" in message
    assert not summary.exists()


def test_rebuild_hint_names_the_rule_of_each_output():
    from gradiend.util.io import producing_rule

    expected = {"data/neutral.parquet": "create_neutral_data", "prune/mask.safetensors": "pre_prune",
                "seeds/3/encoder/metrics.json": "evaluate_encoders", "best/seed.json": "select_seed",
                "decoder/summary.json": "select_cell", "rewritten/F/model.safetensors": "rewrite_models",
                "decoder/cells/lr~1_ff~-1.json": "decoder_grid",
                "provenance.json": "provenance"}
    for relative, rule in expected.items():
        assert producing_rule(f"results/exp/{relative}") == rule, relative
    assert producing_rule("/somewhere/else/table.parquet") is None


# --- permissions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),
                                                        (0o077, 0o600, 0o700)])
def test_atomic_outputs_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    from gradiend.util.io import atomic_dir, write_json

    previous = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "folder") as folder:
            (folder / "inside.txt").write_text("x")
            # What transformers' save_pretrained does for model.safetensors: mkstemp (0600), then rename.
            handle, private = tempfile.mkstemp(dir=folder)
            os.close(handle)
            os.replace(private, folder / "model.safetensors")
            os.replace(tempfile.mkdtemp(dir=folder), folder / "sub")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == dir_mode
    for name in ("inside.txt", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "folder" / name).stat().st_mode) == file_mode, name
    assert stat.S_IMODE((tmp_path / "folder" / "sub").stat().st_mode) == dir_mode
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_truncated_demo_model_weights(run, finished, tmp_path):
    """A damaged base model folder that the workflow built (a demo model) names the rule that rebuilds it."""
    folder = tmp_path / "results" / "_demo" / "models" / "tiny-bert"
    shutil.copytree(run.experiment["base_model_path"], folder)
    _truncate(folder / "model.safetensors")
    cut = run.cut("evaluate_encoders")
    cut["base_model_path"] = str(folder)
    with pytest.raises(ValueError) as error:
        stages.evaluate_encoders(cut, seeds=[0], models=[run.path("seeds", "0", "model")],
                                 training=run.path("data", "training.parquet"),
                                 neutral=run.path("data", "neutral.parquet"), metrics=[str(tmp_path / "m.json")],
                                 encoded=[str(tmp_path / "e.parquet")], distributions=[str(tmp_path / "d.png")])
    message = str(error.value)
    assert f"model folder {str(folder)!r}: its safetensors weights cannot be read" in message
    assert "snakemake --forcerun demo_model" in message


def test_causal_model_on_rows_without_left_context(run, finished, tiny_causal_lm_dir, tmp_path):
    """Rows whose target opens the text (fine for a masked LM) cannot train a causal LM: refused
    before training, naming the setting that fixes it, not at the batch that holds such a row."""
    table = pd.read_parquet(run.path("data", "training.parquet"))
    table.loc[len(table) - 3:, "masked"] = "[MASK] " + table["masked"].str.split("[MASK]", n=1, regex=False).str[1]
    opening = tmp_path / "training.parquet"
    table.to_parquet(opening)
    cut = run.cut("train_seed")
    cut["base_model_path"] = str(tiny_causal_lm_dir)
    with pytest.raises(ValueError) as error:
        train_seed(run, cut, training=str(opening))
    message = str(error.value)
    assert f"3 of {len(table)} rows of the training data of exp have no text before their first mask" in message
    assert "causal LM" in message and "`data.min_left_context_words`" in message

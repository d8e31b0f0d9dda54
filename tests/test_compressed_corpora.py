"""Compressed corpora (issue 25): ``corpus.txt.gz``, ``.csv.gz``, ``.jsonl.gz`` (and ``.bz2``, ``.xz``) are
read as the plain file would be, through the same checks: the config accepts them at start-up, data
creation makes exactly the plain file's training table, and a damaged, empty or non-UTF-8 compressed
file is one error naming it, with nothing written."""
import bz2
import gzip
import lzma
from pathlib import Path

import pandas as pd
import pytest

from gradiend import stages
from gradiend import workflow_config as wfc
from gradiend.schema_validation import ConfigError
from tests.stages_support import experiment_config

COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


@pytest.fixture(scope="module")
def plain(tmp_path_factory, demo_corpus) -> dict[str, Path]:
    """The same 600 texts as corpus.txt, corpus.csv and corpus.jsonl."""
    root = tmp_path_factory.mktemp("plain")
    lines = demo_corpus[:600]
    files = {".txt": root / "corpus.txt", ".csv": root / "corpus.csv", ".jsonl": root / "corpus.jsonl"}
    files[".txt"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    pd.DataFrame({"text": lines}).to_csv(files[".csv"], index=False)
    pd.DataFrame({"text": lines}).to_json(files[".jsonl"], orient="records", lines=True)
    return files


def compressed(source: Path, folder: Path, compression: str) -> Path:
    target = folder / f"{source.name}{compression}"
    target.write_bytes(COMPRESS[compression](source.read_bytes()))
    return target


def training_table(corpus: Path, out: Path) -> pd.DataFrame:
    """The training table of the workflow's data stage on ``corpus`` (the config validated first)."""
    experiment = experiment_config("demo:tiny-bert", corpus, out / "results")
    training = out / "results" / "exp" / "data" / "training.parquet"
    stages.create_training_data(wfc.stage_config(experiment, "create_training_data"), texts=str(corpus),
                                training=str(training), summary=str(training.with_name("summary.json")))
    return pd.read_parquet(training)


@pytest.mark.parametrize("fmt, compression", [(".txt", ".gz"), (".csv", ".gz"), (".jsonl", ".gz"),
                                              (".txt", ".bz2"), (".txt", ".xz")])
def test_a_compressed_corpus_gives_the_plain_corpus_training_table(plain, tmp_path, fmt, compression):
    source = compressed(plain[fmt], tmp_path, compression)
    expected = training_table(plain[fmt], tmp_path / "from_plain")
    table = training_table(source, tmp_path / "from_compressed")
    assert len(expected) >= 100 and set(expected["factual_class"]) == {"F", "M"}
    pd.testing.assert_frame_equal(table, expected)


def bad_compressed_file(kind: str, plain: dict, folder: Path) -> tuple[Path, str]:
    """A damaged compressed corpus of ``kind`` and what its error must say."""
    if kind == "not gzip":
        path = folder / "corpus.txt.gz"
        path.write_bytes(plain[".txt"].read_bytes())
        return path, rf"{path} is not a readable gzip-compressed txt file \(BadGzipFile"
    if kind == "truncated":
        path = folder / "corpus.csv.gz"
        path.write_bytes(gzip.compress(plain[".csv"].read_bytes())[:200])
        return path, rf"{path} is not a readable gzip-compressed csv file \(EOFError"
    if kind == "not utf-8":
        path = folder / "corpus.txt.xz"
        path.write_bytes(lzma.compress("She said caf\u00e9.\n".encode("latin-1")))
        return path, rf"{path} is not UTF-8 text \(byte 0xe9 at offset 12 is invalid in utf-8, after decompressing\)"
    if kind == "empty table":
        path = folder / "corpus.csv.gz"
        path.write_bytes(gzip.compress(b""))
        return path, rf"{path} is empty \(0 bytes after decompressing\)"
    if kind == "empty text":
        path = folder / "corpus.txt.gz"
        path.write_bytes(gzip.compress(b"\n \n"))
        return path, rf"{path} is empty: it holds no non-empty text"
    path = folder / "corpus.jsonl.bz2"  # header only is a CSV thing; a JSONL file of no rows holds nothing
    path.write_bytes(bz2.compress(b"text\n"))
    return path, rf"{path} is not a readable bz2-compressed jsonl file"


@pytest.mark.parametrize("kind", ["not gzip", "truncated", "not utf-8", "empty table", "empty text", "not json"])
def test_a_damaged_compressed_corpus_is_one_error_naming_it(plain, tmp_path, kind):
    path, message = bad_compressed_file(kind, plain, tmp_path)
    with pytest.raises(ValueError, match=message):
        training_table(path, tmp_path)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name, message", [
    ("corpus.parquet.gz", "is a compressed Parquet file: Parquet compresses inside the file, so give it uncompressed"),
    ("corpus.gz", "has the suffix '.gz', which names no supported format"),
    ("corpus.docx.gz", "has the suffix '.docx.gz', which names no supported format"),
])
def test_a_compressed_file_of_no_readable_format_is_refused_at_start_up(tmp_path, name, message):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"text\n"))
    with pytest.raises(ConfigError) as caught:
        experiment_config("demo:tiny-bert", path, tmp_path / "results")
    assert caught.value.problems == [f"config key `experiments.exp.data.source.path`: {path} {message}"
                                     + ("" if "Parquet" in message else
                                        " (.txt, .text, .csv, .tsv, .parquet, .pq, .jsonl, .json; all but Parquet "
                                        "also compressed as .gz, .bz2, .xz, e.g. corpus.txt.gz)")
                                     + "; rename or convert the file"]

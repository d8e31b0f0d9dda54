"""Streamed corpora: a capped dataset source reads only what it needs, offline."""
import json

import pytest

from gradiend.data import base_loader
from gradiend.data.base_loader import resolve_base_data


def _write_folder(folder, n_files=3, rows_per_file=40):
    folder.mkdir()
    texts = []
    for f in range(n_files):
        lines = []
        for i in range(rows_per_file):
            text = f"text {f}-{i}" if i % 7 else ""          # some empty rows are skipped
            lines.append(json.dumps({"text": text, "id": f * 1000 + i}))
            texts.append(text)
        (folder / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return texts


def test_local_dataset_folder_is_streamed_seeded_and_capped(tmp_path, monkeypatch):
    import datasets

    texts = _write_folder(tmp_path / "corpus")
    calls = []
    real = datasets.load_dataset

    def spy(*args, **kwargs):
        calls.append(kwargs.get("streaming", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    first = resolve_base_data(str(tmp_path / "corpus"), max_size=10, seed=3, stream_buffer_size=16)
    again = resolve_base_data(str(tmp_path / "corpus"), max_size=10, seed=3, stream_buffer_size=16)
    other = resolve_base_data(str(tmp_path / "corpus"), max_size=10, seed=4, stream_buffer_size=16)
    assert calls == [True, True, True]
    assert first == again and len(first) == 10 and first != other
    assert set(first) <= {t for t in texts if t} and len(set(first)) == 10
    # the same texts as a plain seeded streaming pipeline of `datasets` itself
    plain = real(str(tmp_path / "corpus"), split="train", streaming=True).shuffle(seed=3, buffer_size=16)
    expected = [row["text"].strip() for row in plain if row["text"].strip()][:10]
    assert first == expected
    # no seed: stream order, first ten non-empty texts
    assert resolve_base_data(str(tmp_path / "corpus"), max_size=10, seed=None) == [t for t in texts if t][:10]


def test_streaming_stops_after_what_it_needs(monkeypatch):
    import datasets

    read = []

    def rows():
        for i in range(100_000):
            read.append(i)
            yield {"text": f"sentence {i}"}

    def fake_load(source, name=None, split=None, streaming=False):
        assert streaming, "a capped hub source must be streamed, never downloaded whole"
        assert (source, name, split) == ("wikimedia/wikipedia", "20231101.en", "train")
        return datasets.IterableDataset.from_generator(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    texts = resolve_base_data("wikimedia/wikipedia", max_size=50, seed=0, hf_config="20231101.en",
                              split="train", stream_buffer_size=100)
    assert len(texts) == 50 and len(set(texts)) == 50
    assert len(read) <= 50 + 100 + 1


def test_uncapped_or_file_sources_are_not_streamed(tmp_path, monkeypatch):
    path = tmp_path / "base.txt"
    path.write_text("a\nb\nc\n", encoding="utf-8")
    monkeypatch.setattr(base_loader, "stream_hf_texts", lambda *a, **k: pytest.fail("streamed a file"))
    picked = resolve_base_data(str(path), max_size=2, seed=1)
    assert len(picked) == len(set(picked)) == 2 and set(picked) <= {"a", "b", "c"}
    assert not base_loader._streams("wikimedia/wikipedia", None)
    assert base_loader._streams("wikimedia/wikipedia", 5)


def test_streamed_source_without_the_text_column_is_one_clear_error(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "part.jsonl").write_text(json.dumps({"body": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no text column 'text'"):
        resolve_base_data(str(folder), max_size=3, seed=0)

"""The offline English corpus: Jane Austen's novels from Debian's r-cran-janeaustenr, read without
R, split into train and held-out text and cut into token windows."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from transformers import AutoTokenizer

from interp import corpus
from interp.organisms import ORGANISMS


@pytest.fixture(scope="module")
def tokenizer():
    """The organisms' tokenizer: small and fast (any tokenizer works; SmolLM2's is checked in
    test_smollm2_transcoders.py)."""
    return AutoTokenizer.from_pretrained(ORGANISMS["induction-2l"].path)


def test_the_six_novels_are_read_whole():
    novels = corpus.austen_novels()
    assert list(novels) == list(corpus.NOVELS.values())
    words = {title: len(text.split()) for title, text in novels.items()}
    # janeaustenr's novels run from Northanger Abbey (~77k words) to Mansfield Park (~160k)
    assert 70_000 < words["Northanger Abbey"] < 85_000
    assert 150_000 < words["Mansfield Park"] < 170_000
    assert 700_000 < sum(words.values()) < 760_000
    pride = novels["Pride and Prejudice"]
    assert "It is a truth universally acknowledged, that a single man in possession" in pride
    assert "  " not in pride and "\n\n\n" not in pride  # spaces and blank lines are collapsed


def test_held_out_is_the_end_of_every_novel_and_disjoint_from_train():
    train, held = corpus.split_texts("train"), corpus.split_texts("held_out")
    whole = corpus.austen_novels()
    for title, text in whole.items():
        assert train[title] + "\n\n" + held[title] == text
        share = len(held[title].split("\n\n")) / len(text.split("\n\n"))
        assert 0.09 < share < 0.11
    assert held["Persuasion"].rstrip().endswith("Finis")
    assert "It is a truth universally acknowledged" not in held["Pride and Prejudice"]


def test_windows_have_the_length_asked_and_decode_to_english(tokenizer):
    for seq_len in (16, 128):
        windows = corpus.token_windows(tokenizer, seq_len, "held_out")
        assert windows.dim() == 2 and windows.shape[1] == seq_len
        assert (windows[:, 0] == tokenizer.bos_token_id).all()
    stream = corpus.token_stream(tokenizer, "held_out")
    assert windows.shape[0] == len(stream) // 127
    # consecutive windows tile the stream: window i holds stream[127 i : 127 (i + 1)]
    assert torch.equal(windows[3, 1:], stream[3 * 127 : 4 * 127])
    text = tokenizer.decode(windows[5, 1:])
    words = re.findall(r"[A-Za-z']+", text)
    assert len(words) > 40  # the organisms' tokenizer, made for Python, spends ~2 tokens a word
    common = {"the", "and", "of", "to", "a", "her", "in", "was", "that", "she", "it", "he"}
    assert sum(w.lower() in common for w in words) / len(words) > 0.2


def test_the_token_stream_decodes_back_to_the_text(tokenizer):
    stream = corpus.token_stream(tokenizer, "held_out")
    texts = corpus.split_texts("held_out").values()
    assert tokenizer.decode(stream) == tokenizer.eos_token.join(texts)


def test_train_and_held_out_windows_do_not_overlap(tokenizer):
    train = corpus.token_windows(tokenizer, 32, "train")
    held = corpus.token_windows(tokenizer, 32, "held_out")
    assert len(train) > 7 * len(held) > 0  # held-out: ~12% of the characters
    # no 31-token stretch of held-out text appears anywhere in the train stream
    seen = {tuple(row) for row in train[:, 1:].tolist()}
    assert not seen & {tuple(row) for row in held[:, 1:].tolist()}
    stream = corpus.token_stream(tokenizer, "train")
    probe = held[len(held) // 2, 1:9]
    hits = (stream.unfold(0, 8, 1) == probe).all(-1).nonzero()
    assert len(hits) == 0


def test_batches_are_seeded_and_cover_each_window_once(tokenizer):
    windows = corpus.token_windows(tokenizer, 64, "held_out")
    first = list(corpus.window_batches(tokenizer, 64, batch=50, split="held_out", seed=0))
    again = list(corpus.window_batches(tokenizer, 64, batch=50, split="held_out", seed=0))
    other = next(corpus.window_batches(tokenizer, 64, batch=50, split="held_out", seed=1))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other)
    assert len(first) == len(windows) // 50
    rows = torch.cat(first)
    assert len({tuple(r) for r in rows.tolist()}) == len(rows)  # no window twice in an epoch
    sample = corpus.window_sampler(tokenizer, 64, "held_out")
    gen = torch.Generator().manual_seed(0)
    drawn = torch.cat([sample(7, gen) for _ in range(len(windows) // 7)])
    assert len({tuple(r) for r in drawn.tolist()}) == len(drawn)


def test_bad_arguments_and_missing_data_fail_clearly(tokenizer, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="split must be one of"):
        corpus.token_windows(tokenizer, 64, "test")
    with pytest.raises(ValueError, match="seq_len must be at least 2"):
        corpus.token_windows(tokenizer, 1)
    monkeypatch.setenv("INTERP_AUSTEN_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(corpus, "_R_LIBRARIES", ())
    with pytest.raises(FileNotFoundError, match="r-cran-janeaustenr"):
        corpus.austen_dir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "Rdata.rdx").write_bytes(b"\x1f\x8b not gzip")
    (tmp_path / "data" / "Rdata.rdb").write_bytes(b"")
    with pytest.raises(ValueError, match=f"cannot read the R data in {tmp_path}"):
        corpus.austen_novels()

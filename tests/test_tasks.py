import pytest
import torch

from interp.tasks import Task, induction_task, variable_tracking_task


def test_task_from_strings(induction_model):
    task = Task(
        clean=["a = 7; b = a; print(b)"],
        corrupted=["a = 3; b = a; print(b)"],
        answers=["7"],
        wrong_answers=["3"],
    )
    batch = task.tokens(induction_model)
    assert batch.clean.shape == batch.corrupted.shape
    assert batch.clean[0, 0].item() == induction_model.tokenizer.bos_token_id
    assert induction_model.to_string(batch.answers) == "7"


def test_metrics_on_hand_made_logits(induction_model):
    tokens = torch.zeros(2, 3, dtype=torch.long)
    logits = torch.zeros(1, 2, induction_model.cfg.d_vocab)
    logits[0, :, 5] = 2.0
    logits[0, :, 6] = 1.0
    for metric, expected in [("logit_diff", 1.0), ("prob", None), ("loss", None)]:
        task = Task(tokens, tokens, torch.tensor([5, 5]), torch.tensor([6, 6]), metric=metric)
        batch = task.tokens(induction_model)
        value = batch.score(logits).item()
        if metric == "logit_diff":
            assert value == pytest.approx(expected)
        elif metric == "prob":
            assert value == pytest.approx(logits[0, 0].softmax(-1)[5].item())
        else:
            assert value == pytest.approx(-logits[0, 0].log_softmax(-1)[5].item())


def test_kl_is_zero_on_the_clean_run(induction_model):
    task = induction_task(induction_model, n=2, metric="kl")
    batch = task.tokens(induction_model)
    clean, corrupted = batch.baseline(induction_model)
    assert clean == pytest.approx(0.0, abs=1e-5) and corrupted > 0.1


def test_shipped_tasks_have_equal_lengths(induction_model):
    for task in [
        induction_task(induction_model),
        variable_tracking_task(induction_model, hops=3, distractors=2),
    ]:
        batch = task.tokens(induction_model)
        assert batch.clean.shape == batch.corrupted.shape
        assert not torch.equal(batch.clean, batch.corrupted)


def test_variable_tracking_pairs_differ_only_in_the_value(induction_model):
    task = variable_tracking_task(induction_model, n=5)
    for clean, corrupted, a, w in zip(task.clean, task.corrupted, task.answers, task.wrong_answers):
        diffs = [(x, y) for x, y in zip(clean, corrupted) if x != y]
        assert diffs == [(a, w)]


def test_bad_tasks(induction_model):
    with pytest.raises(ValueError, match="needs wrong_answers"):
        Task(["a"], ["b"], ["c"])
    with pytest.raises(ValueError, match="metric='acc'"):
        Task(["a"], ["b"], ["c"], metric="acc")
    with pytest.raises(ValueError, match="same number of tokens"):
        Task(["x = 1"], ["x = 1 + 2 + 3"], ["1"], ["2"]).tokens(induction_model)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Task(
            torch.zeros(1, 3, dtype=torch.long),
            torch.zeros(1, 3, dtype=torch.long),
            torch.tensor([10**6]),
            torch.tensor([0]),
        ).tokens(induction_model)
    with pytest.raises(
        ValueError, match="one answer must be one token|an answer must be one token"
    ):
        Task(["x = 1"], ["x = 2"], ["print(x)"], ["x"]).tokens(induction_model)
    with pytest.raises(ValueError, match="corrupted has 2 entries but clean has 1"):
        Task(["a"], ["b", "c"], ["d"], ["e"])
    with pytest.raises(ValueError, match="over the context 256"):  # not silently truncated
        Task(["1" * 300], ["2" * 300], ["1"], ["2"]).tokens(induction_model)

"""Task metrics: functions, several answers, per-prompt and multi-token answer positions, and
output vocabularies apart from the input one; each checked against TransformerLens's own
patching (one full forward per patch) with a metric written here by hand."""

import pytest
import torch
import transformer_lens.patching as tlp
from tiny_models import tiny_model

from interp import Result
from interp.attribution import attribution_patch, direct_logit_attribution
from interp.metrics import prob_diff
from interp.patching import patch_sweep
from interp.path_patching import path_patch_sweep
from interp.tasks import NonFiniteMetric, Task, induction_task

TOL = 1e-4  # logits
PTOL = 1e-5  # probabilities


@pytest.fixture(scope="module")
def base(induction_model):
    """Clean/corrupted induction tokens ``[4, 13]``, the answers at the last position, and the
    wrong answers."""
    batch = induction_task(induction_model, n=4, period=8, seed=3).tokens(induction_model)
    return batch.clean, batch.corrupted, batch.answers, batch.wrong_answers


def _tl(model, site, target, cache, metric):
    fn = {"resid_pre": tlp.get_act_patch_resid_pre, "z": tlp.get_act_patch_attn_head_out_by_pos}
    return fn[site](model, target, cache, metric)


def _sweeps(model, task, site, **kw):
    by = ("layer", "pos", "head") if site == "z" else ("layer", "pos")
    return [
        patch_sweep(model, task, site, by, engine=e, progress=False, **kw).values
        for e in ("resume", "full")
    ]


def _rows(logits):
    return torch.arange(logits.shape[0])


def test_a_metric_function_equals_transformer_lens(induction_model, base):
    clean, corrupted, answers, wrong = base
    task = Task(clean, corrupted, answers, wrong, metric=prob_diff)
    _, clean_cache = induction_model.run_with_cache(clean)

    def by_hand(logits):  # TransformerLens's form: full logits -> scalar
        probs = logits[:, -1].softmax(-1)
        return (probs[_rows(probs), answers] - probs[_rows(probs), wrong]).mean()

    expected = _tl(induction_model, "resid_pre", corrupted, clean_cache, by_hand)
    for ours in _sweeps(induction_model, task, "resid_pre"):
        assert (ours - expected).abs().max().item() <= PTOL
    assert expected.abs().max() > 1e-3  # the metric moves


def test_the_builtin_prob_equals_a_function_computing_it(induction_model, base):
    clean, corrupted, answers, wrong = base

    def my_prob(logits, batch):
        return logits.softmax(-1).gather(
            -1, batch.answers[None, :, None].expand(len(logits), -1, 1)
        )[..., 0]

    builtin = Task(clean, corrupted, answers, metric="prob")
    mine = Task(clean, corrupted, answers, metric=my_prob)
    assert builtin.tokens(induction_model).baseline(induction_model) == pytest.approx(
        mine.tokens(induction_model).baseline(induction_model), abs=PTOL
    )
    for a, b in zip(_sweeps(induction_model, builtin, "z"), _sweeps(induction_model, mine, "z")):
        assert (a - b).abs().max().item() <= PTOL
    grads = [
        attribution_patch(induction_model, t, "resid_pre")["resid_pre"].values
        for t in (builtin, mine)
    ]
    assert (grads[0] - grads[1]).abs().max().item() <= PTOL


def test_a_metric_of_one_value_per_run_equals_transformer_lens(induction_model, base):
    clean, corrupted, answers, wrong = base

    def worst_prompt(logits, batch):  # [n, batch, vocab] -> [n]: not a mean over prompts
        rows = torch.arange(logits.shape[1])
        return (logits[:, rows, batch.answers] - logits[:, rows, batch.wrong_answers]).amin(-1)

    task = Task(clean, corrupted, answers, wrong, metric=worst_prompt)
    _, clean_cache = induction_model.run_with_cache(clean)

    def by_hand(logits):
        rows = _rows(logits)
        return (logits[rows, -1, answers] - logits[rows, -1, wrong]).min()

    expected = _tl(induction_model, "resid_pre", corrupted, clean_cache, by_hand)
    for ours in _sweeps(induction_model, task, "resid_pre"):
        assert (ours - expected).abs().max().item() <= TOL


def test_several_answers_per_prompt(induction_model, base):
    clean, corrupted, answers, wrong = base
    many = torch.stack([answers, (answers + 7) % 2048], dim=1)  # [batch, 2]
    many_wrong = torch.stack([wrong, (wrong + 3) % 2048, (wrong + 5) % 2048], dim=1)  # [batch, 3]
    logits = induction_model(clean)[:, -1].float().detach()
    rows = _rows(logits)
    probs = logits.softmax(-1)
    want = {
        "prob": (probs[rows, many[:, 0]] + probs[rows, many[:, 1]]).mean(),
        "loss": -(probs[rows, many[:, 0]] + probs[rows, many[:, 1]]).log().mean(),
        "logit_diff": (
            logits[rows[:, None], many].mean(-1) - logits[rows[:, None], many_wrong].mean(-1)
        ).mean(),
    }
    for metric, value in want.items():
        batch = Task(clean, corrupted, many, many_wrong, metric=metric).tokens(induction_model)
        assert batch.baseline(induction_model)[0] == pytest.approx(float(value), abs=PTOL)
    # the resume engine's logit_diff reads two unembedding columns: the same as the full path
    task = Task(clean, corrupted, many, many_wrong)
    resume, full = _sweeps(induction_model, task, "resid_pre")
    assert (resume - full).abs().max().item() <= TOL
    # given as lists of strings/ids per pair, too
    lists = Task(clean, corrupted, many.tolist(), many_wrong.tolist()).tokens(induction_model)
    assert torch.equal(lists.answers, many) and torch.equal(lists.wrong_answers, many_wrong)


@pytest.mark.parametrize("site", ["resid_pre", "z"])
def test_per_prompt_answer_positions_equal_transformer_lens(induction_model, base, site):
    clean, corrupted, _, wrong = base
    pos = torch.tensor([10, 8, 9, 10])  # positions 11, 12 reach no answer: not run
    answers = clean[torch.arange(4), pos + 1]  # the induction continuation at each position
    task = Task(clean, corrupted, answers, wrong, answer_pos=pos)
    assert task.tokens(induction_model).last_answer_pos == 10
    _, clean_cache = induction_model.run_with_cache(clean)
    _, corrupted_cache = induction_model.run_with_cache(corrupted)

    def by_hand(logits):
        rows = _rows(logits)
        return (logits[rows, pos, answers] - logits[rows, pos, wrong]).mean()

    expected = _tl(induction_model, site, corrupted, clean_cache, by_hand)
    for ours in _sweeps(induction_model, task, site):
        assert (ours - expected).abs().max().item() <= TOL
    assert expected.abs().max() > 0.1
    noised = patch_sweep(induction_model, task, "resid_pre", direction="noise", progress=False)
    expected = _tl(induction_model, "resid_pre", clean, corrupted_cache, by_hand)
    assert (noised.values - expected).abs().max().item() <= TOL


def test_per_prompt_positions_are_a_mean_over_single_prompt_tasks(induction_model, base):
    """Path patching and attribution patching of a task with per-prompt positions average the
    same analyses of each pair on its own (every metric here is a mean over prompts)."""
    clean, corrupted, _, wrong = base
    pos = [10, 8, 9, 12]
    answers = torch.cat([clean[torch.arange(3), torch.tensor(pos[:3]) + 1], base[2][3:]])
    whole = Task(clean, corrupted, answers, wrong, answer_pos=pos)
    parts = [
        Task(
            clean[i : i + 1],
            corrupted[i : i + 1],
            answers[i : i + 1],
            wrong[i : i + 1],
            answer_pos=p,
        )
        for i, p in enumerate(pos)
    ]
    for run in (
        lambda t: path_patch_sweep(induction_model, t, progress=False).values,
        lambda t: attribution_patch(induction_model, t, "z")["z"].values,
        lambda t: direct_logit_attribution(induction_model, t)["heads"].values,
    ):
        mean = torch.stack([run(t) for t in parts]).mean(0)
        assert (run(whole) - mean).abs().max().item() <= TOL


def test_direct_logit_attribution_adds_up_at_per_prompt_positions(induction_model, base):
    clean, corrupted, _, wrong = base
    pos = torch.tensor([10, 8, 9, 12])
    answers = (clean[:, 1] + 1) % 2048
    task = Task(clean, corrupted, answers, wrong, answer_pos=pos)
    parts = direct_logit_attribution(induction_model, task)
    total = sum(float(parts[k].values.sum()) for k in ("heads", "neurons", "other"))
    logits = induction_model(clean).float().detach()
    rows = _rows(logits)
    assert total == pytest.approx(
        float((logits[rows, pos, answers] - logits[rows, pos, wrong]).mean()), abs=1e-3
    )


def test_a_multi_token_answer(induction_model, base):
    """The answer is the last prompt token plus the next one: two positions per prompt, read
    teacher-forced; ``loss`` is -log of the whole sequence's probability."""
    clean, corrupted, answers, wrong = base
    seq = clean.shape[1]
    pos = torch.tensor([[seq - 2, seq - 1]] * 4)
    sequence = torch.stack([clean[:, -1], answers], dim=1)  # [batch, 2]
    task = Task(clean, corrupted, sequence, metric="loss", answer_pos=pos)
    _, clean_cache = induction_model.run_with_cache(clean)

    def by_hand(logits):
        lp = logits.log_softmax(-1)
        rows = _rows(lp)
        return -(lp[rows, -2, clean[:, -1]] + lp[rows, -1, answers]).mean()

    expected = _tl(induction_model, "resid_pre", corrupted, clean_cache, by_hand)
    for ours in _sweeps(induction_model, task, "resid_pre"):
        assert (ours - expected).abs().max().item() <= TOL

    def second_token_logit(logits, batch):  # a function sees [n, batch, m, vocab]
        return logits[:, :, 1].gather(-1, batch.answers[None, :, 1:].expand(len(logits), -1, -1))[
            ..., 0
        ]

    task = Task(clean, corrupted, sequence, metric=second_token_logit, answer_pos=pos)
    expected = _tl(
        induction_model, "resid_pre", corrupted, clean_cache,
        lambda logits: logits[_rows(logits), -1, answers].mean(),
    )  # fmt: skip
    for ours in _sweeps(induction_model, task, "resid_pre"):
        assert (ours - expected).abs().max().item() <= TOL
    with pytest.raises(ValueError, match="reads one answer position per pair"):
        Task(clean, corrupted, sequence, sequence, answer_pos=pos).tokens(induction_model)
    with pytest.raises(ValueError, match="answer sequence of 2 tokens per pair"):
        Task(clean, corrupted, answers, metric="loss", answer_pos=pos).tokens(induction_model)


def test_a_multi_token_string_answer(induction_model):
    """A string answer of m tokens, read at the last m positions of prompts that end with its
    first m - 1 tokens."""
    ids = [induction_model.to_tokens(a, prepend_bos=False)[0].tolist() for a in (" 12", " 34")]
    m = len(ids[0])
    assert m >= 2 and len(ids[1]) == m
    text = [induction_model.to_string(i[:-1]) for i in ids]
    prompts = [f"a ={text[0]}; b = a; print(b){text[0]}", f"a ={text[1]}; b = a; print(b){text[1]}"]
    pos = [list(range(-m, 0))] * 2
    batch = Task(prompts, prompts[::-1], [" 12", " 34"], metric="prob", answer_pos=pos).tokens(
        induction_model
    )
    assert batch.answers.tolist() == ids and batch.answer_pos.shape == (2, m)
    assert batch.clean[:, -(m - 1) :].tolist() == [i[:-1] for i in ids]  # teacher-forced
    logits = induction_model(batch.clean).log_softmax(-1).detach()
    seq = batch.clean.shape[1]
    want = [
        sum(float(logits[r, seq - m + j, ids[r][j]]) for j in range(m)) for r in range(2)
    ]  # log P(answer sequence) per prompt
    clean, _ = batch.baseline(induction_model)
    assert clean == pytest.approx(sum(torch.tensor(want).exp().tolist()) / 2, abs=PTOL)
    with pytest.raises(ValueError, match="an answer must be one token"):
        Task(prompts, prompts, [" 12", " 34"], metric="prob").tokens(induction_model)


def test_an_output_vocabulary_apart_from_the_input_one():
    model = tiny_model(2, d_vocab=50, d_vocab_out=20)
    assert model.W_U.shape[-1] == 20
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50, (3, 7), generator=gen)
    corrupted = torch.randint(0, 50, (3, 7), generator=gen)
    with pytest.raises(
        ValueError, match=r"answers\[1\]=25 is outside .* 0..19 \(cfg.d_vocab_out\)"
    ):
        Task(clean, corrupted, torch.tensor([3, 25, 4]), torch.tensor([5, 6, 7])).tokens(model)
    answers, wrong = torch.tensor([3, 19, 4]), torch.tensor([5, 6, 7])
    pos = torch.tensor([6, 4, 5])
    _, clean_cache = model.run_with_cache(clean)

    def by_hand(logits):
        probs = logits.softmax(-1)
        rows = _rows(probs)
        return (probs[rows, pos, answers] - probs[rows, pos, wrong]).mean()

    expected = _tl(model, "resid_pre", corrupted, clean_cache, by_hand)
    task = Task(clean, corrupted, answers, wrong, metric=prob_diff, answer_pos=pos)
    for ours in _sweeps(model, task, "resid_pre"):
        assert (ours - expected).abs().max().item() <= PTOL


def test_a_metric_function_is_recorded_by_name(induction_model, base, tmp_path):
    clean, corrupted, answers, wrong = base
    task = Task(clean, corrupted, answers, wrong, metric=prob_diff, answer_pos=[12, 12, 11, 12])
    result = patch_sweep(induction_model, task, "resid_pre", progress=False)
    assert result.metric == "prob_diff" and result.provenance["metric"] == "prob_diff"
    assert result.provenance["answer_pos"] == [12, 12, 11, 12]
    loaded = Result.load(result.save(tmp_path / "sweep"))
    assert loaded.metric == "prob_diff" and torch.equal(loaded.values, result.values)


def test_bad_metrics_and_positions_are_clear_errors(induction_model, base):
    clean, corrupted, answers, wrong = base
    m = induction_model

    def task(**kw):
        return Task(clean, corrupted, answers, wrong, **kw)

    with pytest.raises(ValueError, match="or a function metric"):
        task(metric="accuracy")
    bad_shape = task(metric=lambda logits, batch: logits[..., :3])  # [n, batch, 3]
    with pytest.raises(ValueError, match=r"returned \(1, 4, 3\).*\[n, batch\] = \[1, 4\]"):
        bad_shape.tokens(m).baseline(m)
    nan = task(metric=lambda logits, batch: logits[..., 0] * float("nan"))
    nan.metric.__name__ = "nan_metric"
    with pytest.raises(NonFiniteMetric, match="'nan_metric' is NaN on the clean run"):
        patch_sweep(m, nan, "resid_pre", progress=False)
    with pytest.raises(ValueError, match="needs wrong_answers"):
        Task(clean, corrupted, answers, metric=prob_diff).tokens(m).baseline(m)
    with pytest.raises(ValueError, match="answer_pos has 3 entries but clean has 4"):
        task(answer_pos=[1, 2, 3])
    with pytest.raises(ValueError, match=r"answer_pos\[2\]=13 is outside prompts of 13 tokens"):
        task(answer_pos=[1, 2, 13, 4]).tokens(m)
    with pytest.raises(ValueError, match=r"answer_pos\[0\]=-14 is outside"):
        task(answer_pos=[-14, 2, 3, 4]).tokens(m)
    with pytest.raises(ValueError, match="the same number per pair"):
        task(answer_pos=[[1, 2], [1], [1, 2], [1, 2]]).tokens(m)
    with pytest.raises(ValueError, match=r"answers gives \[1, 2\] tokens per pair"):
        Task(clean, corrupted, [[1, 2], [3], [4, 5], [6, 7]], wrong).tokens(m)
    batch = task(answer_pos=[12, 12, 12, 12]).tokens(m)
    assert batch.answer_pos == 12  # one shared position: the int fast path

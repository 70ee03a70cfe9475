"""Bad inputs to the public API fail early, with a message naming the argument (issue 12).

Each case is one bad argument a user could pass; the test checks the exception type and that the
message names the argument. Valid edge inputs (negative positions, the last head) still work.
"""

import pytest
import torch

import interp
from interp import hooks
from interp.heads import (
    attention_pathways,
    detection_scores,
    induction_scores,
    neuron_top_contexts,
    neuron_vocab_projection,
    pathway_task,
    source_effects,
)
from interp.result import Result
from interp.tasks import NonFiniteMetric, Task, induction_task

LONG = "a b " * 400  # ~800 tokens, over induction-2l's context of 256


def either(ours: str, arg: str) -> str:
    """Our message, or (under pytest only) the runtime type checker's, which names ``arg`` too."""
    return f"{ours}|typechecking parameter '{arg}'"


class Ctx:
    def __init__(self, model):
        self.m = model
        self.task = induction_task(model, n=2, period=6)
        self.batch = self.task.tokens(model)
        self.toks = self.batch.clean
        self.same = Task(self.toks, self.toks.clone(), self.batch.answers, self.batch.wrong_answers)
        self.resid = hooks.hook_name(model, "resid_post", 0)
        self.z = hooks.hook_name(model, "z", 0)
        _, self.cache = hooks.run_with_cache(model, self.toks, [self.resid, self.z])
        self.result = Result(torch.arange(6.0).view(2, 3), ("layer", "head"), "x")
        self.vocab = model.cfg.d_vocab
        self.d_model = model.cfg.d_model

    def run_in(self, manager):
        with manager:
            return self.m(self.toks)


@pytest.fixture(scope="module")
def ctx(induction_model):
    return Ctx(induction_model)


@pytest.fixture(scope="module")
def transcoders():
    return interp.load_transcoders("induction-2l")


def _tc_cases():
    return [
        (
            "attribution_graph prompt over context",
            lambda c, tc: interp.attribution_graph(c.m, tc, LONG),
            ValueError,
            "prompt has .* tokens, over the context 256",
        ),
        (
            "intervene prompt over context",
            lambda c, tc: interp.intervene(c.m, tc, LONG, {(0, 1, 0): 0.0}),
            ValueError,
            "prompt has .* over the context",
        ),
        (
            "attribution_graph lone surrogate",
            lambda c, tc: interp.attribution_graph(c.m, tc, "a \ud800 b"),
            ValueError,
            "prompt=.*lone surrogate",
        ),
        (
            "attribution_graph float ids",
            lambda c, tc: interp.attribution_graph(c.m, tc, torch.tensor([1.5, 2.5])),
            TypeError,
            "prompt token ids must be an integer",
        ),
        (
            "attribution_graph empty prompt",
            lambda c, tc: interp.attribution_graph(c.m, tc, ""),
            ValueError,
            "prompt='' is empty",
        ),
        (
            "intervene NaN value",
            lambda c, tc: interp.intervene(c.m, tc, "a b c", {(0, 1, 0): float("nan")}),
            ValueError,
            r"interventions\[\(0, 1, 0\)\]=nan",
        ),
        (
            "intervene inf value",
            lambda c, tc: interp.intervene(c.m, tc, "a b c", {(0, 1, 0): float("inf")}),
            ValueError,
            r"interventions\[\(0, 1, 0\)\]=inf",
        ),
        (
            "intervene non-number value",
            lambda c, tc: interp.intervene(c.m, tc, "a b c", {(0, 1, 0): "big"}),
            TypeError,
            either(r"interventions\[\(0, 1, 0\)\]='big' must be a number", "interventions"),
        ),
        (
            "intervene position out of range",
            lambda c, tc: interp.intervene(c.m, tc, "a b c", {(0, 999, 0): 0.0}),
            ValueError,
            "interventions key .*pos must be in",
        ),
    ]


CASES = [
    # normalisation by a zero clean-minus-corrupted difference
    (
        "patch_sweep normalize, equal metrics",
        lambda c: interp.patch_sweep(c.m, c.same, "resid_pre", normalize=True, progress=False),
        ValueError,
        "normalize=True is undefined: the clean and corrupted metrics are equal",
    ),
    (
        "path_patch_sweep normalize, equal metrics",
        lambda c: interp.path_patch_sweep(c.m, c.same, normalize=True, progress=False),
        ValueError,
        "normalize=True .*normalize=False",
    ),
    # heads= on hooks without a head axis, and heads out of range
    (
        "ablating heads on resid",
        lambda c: c.run_in(hooks.ablating(c.m, [c.resid], heads=[1])),
        ValueError,
        "heads=.*has no head axis",
    ),
    (
        "ablating head 99",
        lambda c: c.run_in(hooks.ablating(c.m, [c.z], heads=[99])),
        IndexError,
        r"heads=\[99\] holds 99, out of range for 4 heads",
    ),
    (
        "patching_from heads on resid",
        lambda c: c.run_in(hooks.patching_from(c.m, c.cache, [c.resid], heads=[1])),
        ValueError,
        "heads=.*has no head axis",
    ),
    (
        "patching_from head 99",
        lambda c: c.run_in(hooks.patching_from(c.m, c.cache, [c.z], heads=[99])),
        IndexError,
        r"heads=\[99\]",
    ),
    (
        "attention_knockout head 99",
        lambda c: c.run_in(hooks.attention_knockout(c.m, [0], [3], [0], heads=[99])),
        IndexError,
        r"heads=\[99\]",
    ),
    # positions out of range (over the context: refused up front)
    (
        "patching_from position 999",
        lambda c: c.run_in(hooks.patching_from(c.m, c.cache, [c.resid], positions=[999])),
        IndexError,
        r"positions=\[999\] holds 999",
    ),
    (
        "attention_knockout dest 999",
        lambda c: c.run_in(hooks.attention_knockout(c.m, [0], [999], [0])),
        IndexError,
        r"dest=\[999\]",
    ),
    (
        "attention_knockout src 999",
        lambda c: c.run_in(hooks.attention_knockout(c.m, [0], [3], [999])),
        IndexError,
        r"src=\[999\]",
    ),
    (
        "steering position 999",
        lambda c: c.run_in(hooks.steering(c.m, c.resid, torch.ones(c.d_model), positions=[999])),
        IndexError,
        r"positions=\[999\]",
    ),
    (
        "caching position 999",
        lambda c: c.run_in(hooks.caching(c.m, [c.resid], positions=[999])),
        IndexError,
        r"positions=\[999\]",
    ),
    # positions within the context but past this prompt's end: refused in the hook
    (
        "patching_from position past the prompt",
        lambda c: c.run_in(hooks.patching_from(c.m, c.cache, [c.resid], positions=[200])),
        IndexError,
        r"positions=\[200\] holds 200, out of range for a sequence of 10 tokens",
    ),
    (
        "patching_from position before the prompt start",
        lambda c: c.run_in(hooks.patching_from(c.m, c.cache, [c.resid], positions=[-11])),
        IndexError,
        r"positions=\[-11\].*sequence of 10 tokens",
    ),
    (
        "attention_knockout dest past the prompt",
        lambda c: c.run_in(hooks.attention_knockout(c.m, [0], [50], [0])),
        IndexError,
        r"dest=\[50\].*sequence of 10 tokens",
    ),
    (
        "steering position past the prompt",
        lambda c: c.run_in(hooks.steering(c.m, c.resid, torch.ones(c.d_model), positions=[10])),
        IndexError,
        r"positions=\[10\].*sequence of 10 tokens",
    ),
    (
        "positions not integers",
        lambda c: c.run_in(hooks.patching_from(c.m, c.cache, [c.resid], positions=[1.5])),
        TypeError,
        either("positions=.*indices must be integers", "positions"),
    ),
    # non-finite intervention values
    (
        "steering NaN vector",
        lambda c: c.run_in(hooks.steering(c.m, c.resid, torch.full((c.d_model,), float("nan")))),
        ValueError,
        "vector holds a non-finite value",
    ),
    (
        "steering inf scale",
        lambda c: c.run_in(hooks.steering(c.m, c.resid, torch.ones(c.d_model), scale=float("inf"))),
        ValueError,
        "scale=inf",
    ),
    (
        "patching_from NaN cache",
        lambda c: c.run_in(
            hooks.patching_from(c.m, {c.resid: torch.full_like(c.cache[c.resid], float("nan"))})
        ),
        ValueError,
        r"cache\['blocks.0.hook_resid_post'\] holds a non-finite value",
    ),
    (
        "ablating float reference",
        lambda c: c.run_in(hooks.ablating(c.m, [c.resid], "mean", reference=c.toks.float())),
        TypeError,
        "reference token ids must be an integer tensor",
    ),
    (
        "ablating names as one string",
        lambda c: c.run_in(hooks.ablating(c.m, c.resid)),
        TypeError,
        "names=.*single string",
    ),
    # sweep settings
    (
        "patch_sweep max_tokens=0",
        lambda c: interp.patch_sweep(c.m, c.task, "resid_pre", max_tokens=0, progress=False),
        ValueError,
        "max_tokens=0",
    ),
    (
        "patch_sweep max_tokens<0",
        lambda c: interp.patch_sweep(c.m, c.task, "z", max_tokens=-5, progress=False),
        ValueError,
        "max_tokens=-5",
    ),
    (
        "path_patch_sweep senders_per_pass=0",
        lambda c: interp.path_patch_sweep(c.m, c.task, senders_per_pass=0, progress=False),
        ValueError,
        "senders_per_pass=0",
    ),
    (
        "path_patch_sweep receiver head 99",
        lambda c: interp.path_patch_sweep(c.m, c.task, [("q", 1, 99)], progress=False),
        ValueError,
        r"receivers holds \('q', 1, 99\), which is out of range",
    ),
    (
        "path_patch_sweep receivers misspelt",
        lambda c: interp.path_patch_sweep(c.m, c.task, "logit", progress=False),
        ValueError,
        "receivers='logit'",
    ),
    (
        "path_patch_sweep receiver layer not int",
        lambda c: interp.path_patch_sweep(c.m, c.task, [("q", 1.5, 0)], progress=False),
        TypeError,
        either("receivers holds .*must be integers", "receivers"),
    ),
    # Result
    (
        "Result.sel layer 99",
        lambda c: c.result.sel(layer=99),
        IndexError,
        "layer=99 is out of range for axis 'layer' of size 2",
    ),
    (
        "Result.sel unknown label",
        lambda c: c.result.sel(head="zz"),
        KeyError,
        "head='zz' is not a label",
    ),
    ("Result.top(-1)", lambda c: c.result.top(-1), ValueError, "k=-1"),
    ("Result.top(1.5)", lambda c: c.result.top(1.5), (ValueError, TypeError), either("k=1.5", "k")),
    # Task construction and tokenisation
    (
        "Task out-of-vocabulary token ids",
        lambda c: Task(c.toks + c.vocab, c.toks, c.batch.answers, c.batch.wrong_answers).tokens(
            c.m
        ),
        ValueError,
        "clean holds token id .* outside the vocabulary",
    ),
    (
        "Task negative token ids",
        lambda c: Task(c.toks, c.toks - 10**6, c.batch.answers, c.batch.wrong_answers).tokens(c.m),
        ValueError,
        "corrupted holds token id -",
    ),
    (
        "Task float token ids",
        lambda c: Task(
            c.toks.float() + 0.5, c.toks.float(), c.batch.answers, c.batch.wrong_answers
        ).tokens(c.m),
        TypeError,
        "clean token ids must be an integer tensor",
    ),
    (
        "Task float answers",
        lambda c: Task(c.toks, c.toks, c.batch.answers + 0.5, c.batch.wrong_answers).tokens(c.m),
        TypeError,
        "answers token ids must be an integer tensor",
    ),
    (
        "Task token ids over the context",
        lambda c: Task(
            torch.zeros(1, 300, dtype=torch.long),
            torch.zeros(1, 300, dtype=torch.long),
            torch.tensor([1]),
            torch.tensor([2]),
        ).tokens(c.m),
        ValueError,
        "clean has 300 tokens, over the context 256",
    ),
    (
        "Task lone surrogate",
        lambda c: Task(["a \ud800 b"], ["a c b"], [" a"], [" b"]).tokens(c.m),
        ValueError,
        r"clean\[0\]=.*lone surrogate",
    ),
    (
        "Task bool answer",
        lambda c: Task(["a b"], ["a c"], [True], [" b"]).tokens(c.m),
        TypeError,
        either(r"answers\[0\]=True", "answers"),
    ),
    (
        "Task prompts as one string",
        lambda c: Task("a b", "a c", torch.tensor([1]), torch.tensor([2])),
        TypeError,
        "clean='a b' is a single string",
    ),
    (
        "Task 1-D token tensor",
        lambda c: Task(c.toks[0], c.toks[0], c.batch.answers[:1], c.batch.wrong_answers[:1]),
        ValueError,
        r"clean token ids must be \[batch, pos\]",
    ),
    # analyses taking token ids or head/position arguments
    (
        "induction_scores out-of-vocabulary tokens",
        lambda c: induction_scores(c.m, c.toks + c.vocab),
        ValueError,
        "tokens holds token id",
    ),
    (
        "detection_scores float tokens",
        lambda c: detection_scores(c.m, c.toks.float(), "induction_head"),
        TypeError,
        "tokens token ids must be an integer",
    ),
    (
        "logit_lens out-of-vocabulary tokens",
        lambda c: interp.logit_lens(c.m, c.toks + c.vocab),
        ValueError,
        "tokens holds token id",
    ),
    (
        "logit_lens targets of the wrong shape",
        lambda c: interp.logit_lens(c.m, c.toks, c.toks[:, :2, None]),
        ValueError,
        "targets must be token ids",
    ),
    (
        "neuron_vocab_projection k=-1",
        lambda c: neuron_vocab_projection(c.m, 0, k=-1),
        ValueError,
        "k=-1",
    ),
    (
        "neuron_top_contexts k=0",
        lambda c: neuron_top_contexts(c.m, c.toks, 0, [0], k=0),
        ValueError,
        "k=0",
    ),
    (
        "source_effects head 99",
        lambda c: source_effects(c.m, c.batch, 0, 99, 3),
        IndexError,
        r"head=\[99\]",
    ),
    (
        "source_effects dest 999",
        lambda c: source_effects(c.m, c.batch, 0, 0, 999),
        IndexError,
        r"dest=\[999\].*prompts of 10 tokens",
    ),
    (
        "attention_pathways prompt over context",
        lambda c: attention_pathways(c.m, LONG),
        ValueError,
        "prompt has .* over the context 256",
    ),
    (
        "attention_pathways lone surrogate",
        lambda c: attention_pathways(c.m, "a b \ud800 d a b c"),
        ValueError,
        "prompt=.*lone surrogate",
    ),
    (
        "extract negative threshold with absolute",
        lambda c: interp.extract(interp.CircuitGraph(), threshold=-1.0),
        ValueError,
        "threshold=-1.0 is negative",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_clear_error(ctx, call, error, match):
    with pytest.raises(error, match=match):
        call(ctx)


TC_CASES = _tc_cases()


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in TC_CASES], ids=[c[0] for c in TC_CASES]
)
def test_bad_transcoder_input_is_a_clear_error(ctx, transcoders, call, error, match):
    with pytest.raises(error, match=match):
        call(ctx, transcoders)


def test_nan_baseline_names_the_run(ctx):
    batch = ctx.task.tokens(ctx.m)
    batch.per_prompt = lambda logits: torch.full(logits.shape[:2], float("nan"))
    with pytest.raises(NonFiniteMetric, match="is NaN on the clean run") as caught:
        interp.patch_sweep(ctx.m, batch, "resid_pre", progress=False)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, FloatingPointError)


# -- valid edge inputs still work ---------------------------------------------------------------


def test_negative_positions_count_from_the_end(ctx):
    m, toks, name = ctx.m, ctx.toks, ctx.resid
    _, other = hooks.run_with_cache(m, toks.flip(0), [name])
    with hooks.patching_from(m, other, [name], positions=[-1]), hooks.caching(m, [name]) as seen:
        m(toks)
    patched = seen[name][0]
    assert torch.equal(patched[:, -1], other[name][:, -1])
    assert torch.equal(patched[:, :-1], ctx.cache[name][:, :-1])
    with hooks.caching(m, [name], positions=[-1]) as last:
        m(toks)
    assert torch.equal(last[name][0][:, 0], ctx.cache[name][:, -1])
    vector = torch.ones(ctx.d_model)
    with hooks.steering(m, name, vector, positions=[-1]), hooks.caching(m, [name]) as seen:
        m(toks)
    assert torch.allclose(seen[name][0][:, -1], ctx.cache[name][:, -1] + 1)
    assert torch.equal(seen[name][0][:, 0], ctx.cache[name][:, 0])
    with hooks.attention_knockout(m, [0], [-1], [-2]):  # runs, changes the last position only
        knocked = m(toks)
    plain = m(toks)
    assert torch.equal(knocked[:, :-1], plain[:, :-1]) and not torch.equal(knocked, plain)
    assert torch.equal(ctx.result.sel(layer=-1).values, ctx.result.values[1])
    assert ctx.result.top(0) == []


def test_last_head_is_accepted(ctx):
    m, toks, z = ctx.m, ctx.toks, ctx.z
    last = m.cfg.n_heads - 1
    with hooks.ablating(m, [z], heads=[last]), hooks.caching(m, [z]) as seen:
        m(toks)
    assert (seen[z][0][:, :, last] == 0).all() and (seen[z][0][:, :, 0] != 0).any()
    with hooks.ablating(m, [z], heads=[-1]), hooks.caching(m, [z]) as seen:
        m(toks)
    assert (seen[z][0][:, :, last] == 0).all()
    r = interp.path_patch_sweep(m, ctx.task, [("q", 1, last)], progress=False)
    assert r.values.shape == (m.cfg.n_layers, m.cfg.n_heads) and r.values.isfinite().all()
    assert source_effects(m, ctx.batch, 0, last, -1).shape == (ctx.toks.shape[1],)


def test_pathway_task_shares_the_context_check(ctx):
    with pytest.raises(ValueError, match="over the context 256") as from_pathways:
        pathway_task(ctx.m, LONG)
    with pytest.raises(ValueError, match="over the context 256") as from_task:
        Task([LONG], [LONG], ["a"], ["b"]).tokens(ctx.m)
    assert str(from_pathways.value).split(" has ")[1] == str(from_task.value).split(" has ")[1]

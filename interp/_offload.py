"""Models larger than one device: an HF model placed by accelerate's ``device_map``.

``load_model(spec, device_map=..., max_memory=..., offload_folder=...)`` loads the transformers
model with accelerate's placement (layers split over devices, some kept in CPU memory or on disk
and brought in only while they run), then wraps it as a TransformerBridge in compatibility mode
without weight processing. An offloaded module holds meta placeholders between calls; accelerate
swaps its weights in around the module's own forward. Every ``interp`` analysis that runs the
model (patching with full passes, head scores from patterns, attribution) therefore gives the same
numbers as on one device; analyses that read weight matrices directly (``W_Q``, ``W_U``: weight
head scores, the resumed patching engine) need ``onloaded(model)`` around them, and the patching
engines fall back to full passes on their own (``interp.forward.blockers`` names the offload).

TransformerLens 3.9's ``boot`` refuses a realized map holding ``"disk"`` (and a map mixing CPU
and GPU): its bridge components read some raw parameters outside the wrapped module's forward,
where accelerate has not swapped them in. TransformerLens 4.3 accepts CPU and disk maps, because
each bridge component runs inside accelerate's ``align_module_device``. On 3.9 this module hides
the map from ``boot`` and gives each bridge component whose wrapped module is offloaded the same
alignment, as forward hooks on that one model (nothing global is changed).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from .adapter import adapter

_OFFLOAD_TARGETS = ("cpu", "disk")


def offloaded(model) -> bool:
    """Whether some of ``model``'s weights are offloaded (meta placeholders until they run)."""
    hf = _hf_model(model)
    modules = hf.modules() if hf is not None else model.modules()
    return any(_offloaded_hook(m) is not None for m in modules)


def _hf_model(model):
    return adapter(model).hf_model


def _offloaded_hook(module):
    hook = getattr(module, "_hf_hook", None)
    if hook is None or not getattr(hook, "offload", False):
        return None
    return hook


@contextlib.contextmanager
def onloaded(model):
    """Bring every offloaded weight of ``model`` in for the duration of the block, so that code
    reading weight matrices (``model.W_Q``, ``composition_scores``, ``ov_copying_scores``, the
    resumed patching engine) reads real values; they are offloaded again after it, even when it
    raises. Memory: the whole model is held at once inside the block.

    Example:
        >>> with onloaded(model):
        ...     copying, suppression = ov_copying_scores(model)
    """
    hf = _hf_model(model)
    with _onloaded_modules(hf if hf is not None else model):
        yield model


@contextlib.contextmanager
def _onloaded_modules(root):
    """Bring in the offloaded weights of ``root``'s modules for the block."""
    hooked = [(m, h) for m in root.modules() if (h := _offloaded_hook(m))]
    done = []
    try:
        for module, hook in hooked:
            hook.pre_forward(module)
            done.append((module, hook))
        yield root
    finally:
        for module, hook in reversed(done):
            hook.post_forward(module, None)


def check_device_map(device_map, max_memory, offload_folder, device) -> None:
    """Refuse arguments that cannot describe a placement, before anything loads."""
    if device is not None:
        raise ValueError(
            f"device={device!r} and device_map are exclusive: the map places every module; give "
            "one or the other (e.g. device_map={'': 'cuda:0'} for one device)"
        )
    if device_map is None:
        raise ValueError(
            "max_memory and offload_folder need device_map ('auto', 'balanced', "
            "'balanced_low_0', 'sequential' or a dict of module name -> device)"
        )
    if not isinstance(device_map, (str, dict)):
        raise TypeError(
            f"device_map={device_map!r} is not accepted; give 'auto', 'balanced', "
            "'balanced_low_0', 'sequential' or a dict of module name -> device ('cpu', 'disk', "
            "'cuda:N' or N)"
        )
    if isinstance(device_map, str) and device_map not in (
        "auto",
        "balanced",
        "balanced_low_0",
        "sequential",
    ):
        raise ValueError(
            f"device_map={device_map!r} is not accepted; use 'auto', 'balanced', "
            "'balanced_low_0', 'sequential' or a dict of module name -> device"
        )
    if max_memory is not None and not isinstance(max_memory, dict):
        raise TypeError(
            f"max_memory={max_memory!r} is not accepted; give a dict such as "
            "{0: '10GiB', 'cpu': '30GiB'}"
        )
    if offload_folder is not None and not isinstance(offload_folder, (str, os.PathLike)):
        raise TypeError(f"offload_folder={offload_folder!r} is not accepted; give a folder path")


def load_dispatched(
    folder: Path,
    tokenizer,
    *,
    device_map: str | dict,
    max_memory: dict | None,
    offload_folder: str | os.PathLike | None,
    dtype: torch.dtype,
):
    """The transformers model in ``folder`` placed by accelerate, wrapped as a TransformerBridge
    (compatibility mode, no weight processing). Returns ``(bridge, realized device map)``."""
    from transformers import AutoModelForCausalLM

    placement: dict[str, Any] = {"device_map": device_map}
    if max_memory is not None:
        placement["max_memory"] = max_memory
    if offload_folder is not None:
        Path(offload_folder).mkdir(parents=True, exist_ok=True)
        placement["offload_folder"] = os.fspath(offload_folder)
    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **placement)
    realized = dict(getattr(hf_model, "hf_device_map", None) or {"": "cpu"})
    targets = {str(v).lower() for v in realized.values()}
    if "meta" in targets:
        raise ValueError(f"device_map placed modules on 'meta', which holds no weights: {realized}")
    hf_model.config.architectures = [type(hf_model).__name__]
    needs_alignment = bool(targets & {"disk"}) and not _bridge_aligns_offload()
    bridge = _boot(folder, hf_model, tokenizer, dtype, hide_map=needs_alignment)
    if needs_alignment:
        _align_offloaded_components(bridge)
    bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    if getattr(bridge.cfg, "original_architecture", None) is None:  # TransformerLens 4 leaves it
        bridge.cfg.original_architecture = type(hf_model).__name__
    return bridge, realized


def _bridge_aligns_offload() -> bool:
    """Whether this TransformerLens's bridge components bring offloaded weights in themselves
    (4.x: ``GeneralizedComponent.__call__`` runs under ``align_module_device``)."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    return "__call__" in GeneralizedComponent.__dict__


def _boot(folder: Path, hf_model, tokenizer, dtype, hide_map: bool):
    from transformer_lens.model_bridge import TransformerBridge

    saved = hf_model.__dict__.get("hf_device_map")
    if hide_map and saved is not None:
        del hf_model.hf_device_map  # 3.9's boot refuses 'disk' in the map (see the module doc)
    try:
        # weights read at boot (a fused q/k/v split) must be real, not placeholders
        with _onloaded_hf(hf_model) if hide_map else contextlib.nullcontext():
            bridge = TransformerBridge.boot_transformers(
                str(folder), hf_model=hf_model, tokenizer=tokenizer, dtype=dtype
            )
            if hide_map:
                _keep_added_tensors(hf_model)
            return bridge
    finally:
        if hide_map and saved is not None:
            hf_model.hf_device_map = saved


def _keep_added_tensors(hf_model) -> None:
    """Tensors the bridge added to offloaded modules at boot (3.9 gives ``lm_head`` a zero bias)
    are not in accelerate's offloaded weights, which would fail to find them on the next call:
    keep them in the loader's in-memory part."""
    for module in hf_model.modules():
        hook = _offloaded_hook(module)
        if hook is None or hook.weights_map is None:
            continue
        tensors = [*module.named_parameters(recurse=hook.place_submodules)]
        tensors += [*module.named_buffers(recurse=hook.place_submodules)]
        for name, tensor in tensors:
            if name not in hook.weights_map and tensor.device.type != "meta":
                hook.weights_map.dataset.state_dict[hook.weights_map.prefix + name] = (
                    tensor.detach().to("cpu")
                )


@contextlib.contextmanager
def _onloaded_hf(hf_model):
    with _onloaded_modules(hf_model):
        yield


def _align_offloaded_components(bridge) -> None:
    """Run each bridge component whose wrapped module is offloaded with that module's weights
    brought in, as TransformerLens 4 does (``align_module_device``), through forward hooks on
    this model's own components."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    for component in bridge.modules():
        if not isinstance(component, GeneralizedComponent):
            continue
        wrapped = component._modules.get("_original_component")
        hook = _offloaded_hook(wrapped) if wrapped is not None else None
        if hook is None:
            continue

        def bring_in(_module, _args, wrapped=wrapped, hook=hook):
            hook.pre_forward(wrapped)

        def put_back(_module, _args, _output, wrapped=wrapped, hook=hook):
            hook.post_forward(wrapped, None)

        component.register_forward_pre_hook(bring_in)
        component.register_forward_hook(put_back, always_call=True)

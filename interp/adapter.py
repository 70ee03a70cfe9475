"""The model adapter: what ``interp`` keeps about a model, kept beside the model rather than on it.

An analysis is handed the user's own model, a TransformerLens ``HookedTransformer`` or a
``TransformerBridge``, and reaches everything it needs to know about it through
``adapter(model)``. The adapter owns three kinds of state:

* **the lock**: the re-entrant lock every analysis holds for its whole length
  (``interp.hooks.holding``), so threads sharing a model never see each other's hooks;
* **caches**: data derived from the weights once per model (fused attention matrices, rotary
  tables), under a name each, which ``forget`` drops;
* **provenance**: how the model was loaded (spec, backend, device, dtype, weight processing), as
  ``interp.models.load_model`` records it and every Result copies it.

It also answers the questions on which the two backends differ (``backend``, ``is_hooked``,
``is_bridge``, ``compatibility_mode``, ``ln_final``, ``tokenizer``, ``hf_model``), so an
analysis never tests ``hasattr(model, ...)`` or a class name itself.

Nothing is pinned onto objects ``interp`` does not own: adapters live in a registry that holds
its models weakly, so an adapter goes when its model goes, and a copy of a model gets a fresh
adapter (a fresh lock, empty caches); ``adapter(copy).provenance = adapter(model).provenance``
carries the provenance over. Every analysis takes an adapter wherever it takes a model
(``interp.hooks.locked`` hands the analysis the model itself), and the adapter passes any other
attribute (``cfg``, ``to_tokens``, ``hook_dict``) and calls through to its model.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Literal

Backend = Literal["hooked", "bridge"]


def _has_class(obj, name: str) -> bool:
    # by name along the MRO: no TransformerLens import, and subclasses count
    return any(c.__name__ == name for c in type(obj).__mro__)


class ModelAdapter:
    """One model as ``interp`` sees it: its lock, its caches, its provenance, its backend.

    Get one with ``adapter(model)``; there is one per model object, for as long as it lives.
    """

    def __init__(self, model) -> None:
        self._ref = weakref.ref(model)
        self.kind: str = type(model).__name__
        self.lock = threading.RLock()
        self._caches: dict[str, dict] = {}
        self._provenance: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ModelAdapter({self.kind}, {self.provenance.get('spec')!r})"

    def __getattr__(self, name: str):
        # anything else is the model's (cfg, to_tokens, hook_dict, blocks...), so an adapter
        # goes wherever a model goes; private names are not forwarded (copy and pickle probe them)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, *args, **kwargs):
        """Run the model."""
        return self.model(*args, **kwargs)

    @property
    def model(self):
        """The model (a ``ReferenceError`` once it has been freed)."""
        model = self._ref()
        if model is None:
            raise ReferenceError(f"the {self.kind} this adapter described has been freed")
        return model

    # -- the backend ---------------------------------------------------------------------------
    @property
    def is_hooked(self) -> bool:
        """Whether the model is a ``HookedTransformer`` (TransformerLens 4 has none)."""
        return _has_class(self.model, "HookedTransformer")

    @property
    def is_bridge(self) -> bool:
        """Whether the model is a ``TransformerBridge``."""
        return _has_class(self.model, "TransformerBridge")

    @property
    def backend(self) -> Backend:
        """``"bridge"`` for a TransformerBridge, ``"hooked"`` otherwise."""
        return "bridge" if self.is_bridge else "hooked"

    @property
    def compatibility_mode(self) -> bool:
        """Whether the model is a TransformerBridge in compatibility mode (TransformerLens's
        weight layouts and hook names), the only bridge the fast engines read weights from."""
        return self.is_bridge and bool(getattr(self.model, "compatibility_mode", False))

    @property
    def ln_final(self):
        """The final norm module, or None for a model without one (``normalization_type=None``)."""
        return getattr(self.model, "ln_final", None)

    @property
    def tokenizer(self):
        """The model's tokenizer, or None for a model built without one."""
        return getattr(self.model, "tokenizer", None)

    @property
    def hf_model(self):
        """The transformers model a TransformerBridge wraps, or None (a HookedTransformer)."""
        model = self.model
        # read the instance first: a bridge's __getattr__ forwards unknown names to the HF model
        hf = vars(model).get("original_model")
        return hf if hf is not None else getattr(model, "original_model", None)

    # -- caches --------------------------------------------------------------------------------
    def cache(self, name: str) -> dict:
        """The cache called ``name`` (a dict the caller keys, e.g. by layer and weight version)."""
        return self._caches.setdefault(name, {})

    def forget(self, name: str | None = None) -> None:
        """Drop the cache called ``name``, or every cache."""
        if name is None:
            self._caches.clear()
        else:
            self._caches.pop(name, None)

    # -- provenance ----------------------------------------------------------------------------
    @property
    def provenance(self) -> dict[str, Any]:
        """How the model was loaded: what ``load_model`` recorded, else its name and backend."""
        if self._provenance:
            return dict(self._provenance)
        model = self.model
        return {
            "spec": getattr(model.cfg, "model_name", self.kind),
            "backend": self.backend,
        }

    @provenance.setter
    def provenance(self, value: dict[str, Any]) -> None:
        self._provenance = dict(value)

    def record(self, **fields: Any) -> None:
        """Add ``fields`` to the provenance."""
        self._provenance = {**self.provenance, **fields}

    @property
    def spec(self) -> str:
        """The name the model was loaded by (``load_model``'s spec), or its config's name."""
        return str(self.provenance.get("spec") or "")


_ADAPTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def adapter(model) -> ModelAdapter:
    """The adapter of ``model`` (made on first use, the same one after); an adapter is its own.

    Raises ``TypeError`` for something that is not a model (a name, None): load one first with
    ``interp.load_model``.
    """
    if isinstance(model, ModelAdapter):
        return model
    if model is None or isinstance(model, (str, bytes)) or not hasattr(model, "cfg"):
        raise TypeError(
            f"expected a TransformerLens model (HookedTransformer or TransformerBridge) or its "
            f"ModelAdapter, got {type(model).__name__}; load one with interp.load_model(name)"
        )
    with _GUARD:
        found = _ADAPTERS.get(model)
        if found is None:
            found = _ADAPTERS[model] = ModelAdapter(model)
        return found


def unwrap(obj):
    """The model behind ``obj`` when it is a ``ModelAdapter``; anything else unchanged."""
    return obj.model if isinstance(obj, ModelAdapter) else obj


def cached(model, name: str, key, make: Callable[[], Any]) -> Any:
    """``adapter(model).cache(name)[key]``, made by ``make()`` the first time."""
    store = adapter(model).cache(name)
    if key not in store:
        store[key] = make()
    return store[key]

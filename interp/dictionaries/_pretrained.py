"""Pretrained dictionaries by registry name, loaded through sae-lens.

sae-lens keeps a registry of published dictionaries (its ``pretrained_saes.yaml``): a *release*
such as ``"gpt2-small-res-jb"`` names a Hugging Face repository, the model it was trained on, the
loader that reads its format, and maps each *SAE id* to a folder of that repository.
``sae_lens.SAE.from_pretrained(release, sae_id)`` resolves the names and fetches the folder's
files with ``huggingface_hub``, which answers from its local cache first. A release that is not
in the registry but looks like ``ORG/REPO`` is read as the repository itself, with the SAE id as
the folder.

Offline, a dictionary loads when its folder is in the Hugging Face cache, laid out as
``huggingface_hub`` lays it out::

    $HF_HUB_CACHE/models--ORG--REPO/refs/main                      # the commit hash
    $HF_HUB_CACHE/models--ORG--REPO/snapshots/<commit>/FOLDER/...  # cfg.json, weights, ...

(``huggingface-cli download ORG/REPO --include 'FOLDER/*'`` on a machine with a network writes
exactly that). ``load_pretrained`` checks for the folder before sae-lens runs, so a dictionary that
is not cached fails at once with the repository, the folder and the command that fetches it.
"""

from __future__ import annotations

import difflib
import os

import torch

from .. import _checks

_TRUE = ("1", "true", "yes", "on")


def pretrained_releases(model: str | None = None) -> dict[str, dict]:
    """sae-lens's registry: ``{release: {"repo_id", "model", "format", "sae_ids"}}``.

    ``model`` keeps only the releases trained on that model (as the registry names it, e.g.
    ``"gpt2-small"``).
    """
    _checks.require("sae_lens", "sae-lens's registry of dictionaries", _checks.SAE_LENS_INSTALL)
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    out = {}
    for release, info in get_pretrained_saes_directory().items():
        if model is not None and info.model != model:
            continue
        out[release] = {
            "repo_id": info.repo_id,
            "model": info.model,
            "format": info.conversion_func or "sae_lens",
            "sae_ids": list(info.saes_map),
        }
    return out


def resolve_pretrained(release: str, sae_id: str) -> tuple[str, str]:
    """The ``(repo_id, folder)`` that sae-lens reads for ``release``/``sae_id``.

    Raises:
        ValueError: an unknown release (not in the registry, not ``ORG/REPO``) or SAE id, with
            the closest names.
    """
    _checks.require("sae_lens", "sae-lens's registry of dictionaries", _checks.SAE_LENS_INSTALL)
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        if "/" in release:
            return release, sae_id
        close = difflib.get_close_matches(release, list(directory), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ValueError(
            f"release {release!r} is not in sae-lens's registry ({len(directory)} releases) and "
            f"is not a Hugging Face repo id ORG/REPO{hint}"
        )
    saes = directory[release].saes_map
    if sae_id not in saes:
        close = difflib.get_close_matches(sae_id, list(saes), n=5, cutoff=0.5)
        shown = close or list(saes)[:5]
        raise ValueError(
            f"sae_id {sae_id!r} is not in release {release!r} ({len(saes)} ids); "
            f"{'close matches' if close else 'e.g.'}: {', '.join(shown)}"
        )
    return directory[release].repo_id, str(saes[sae_id])


def load_pretrained(
    release: str, sae_id: str, device: str | torch.device = "cpu", *, dtype: str = "float32"
):
    """A dictionary from sae-lens's registry, through ``sae_lens.SAE.from_pretrained``.

    Arguments:
        release: a release of sae-lens's registry (``pretrained_releases()``), or ``ORG/REPO``.
        sae_id: one of the release's SAE ids (a folder of the repository for ``ORG/REPO``).
        device: where the dictionary goes.
        dtype: its dtype, as sae-lens names it (``"float32"``, ``"float16"``, ``"bfloat16"``).

    Returns:
        The sae-lens ``SAE`` (or ``Transcoder``) in eval mode, without gradients.

    Raises:
        ValueError: an unknown release or SAE id (see ``resolve_pretrained``).
        ConnectionError: the dictionary is not in the local Hugging Face cache and the hub
            cannot be reached (or ``HF_HUB_OFFLINE`` is set); the message names the repository,
            the folder, and how to fetch it or load a downloaded copy with ``load_dictionary``.
    """
    _checks.require("sae_lens", "loading a pretrained dictionary", _checks.SAE_LENS_INSTALL)
    from huggingface_hub import constants

    repo_id, folder = resolve_pretrained(release, sae_id)
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE
    if offline and not _cached(repo_id, folder):
        raise _not_cached(release, sae_id, repo_id, folder, "HF_HUB_OFFLINE is set")
    from sae_lens import SAE

    try:
        sae = SAE.from_pretrained(release, sae_id, device=str(device), dtype=dtype)
    except OSError as err:  # huggingface_hub's "not cached and unreachable" errors are OSErrors
        why = " ".join(str(err).split())[:300] or type(err).__name__
        raise _not_cached(release, sae_id, repo_id, folder, why) from err
    sae.eval()
    sae.requires_grad_(False)
    return sae


def _cached(repo_id: str, folder: str) -> bool:
    """Whether the cache holds a snapshot of ``repo_id`` with a non-empty ``folder`` in it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(repo_id, local_files_only=True, allow_patterns=[])
    except (LocalEntryNotFoundError, OSError, ValueError):
        return False
    path = os.path.join(snapshot, folder)
    return (os.path.isdir(path) and any(os.scandir(path))) or os.path.isfile(path)


def _not_cached(release: str, sae_id: str, repo_id: str, folder: str, why: str) -> ConnectionError:
    return ConnectionError(
        f"cannot load {release!r}/{sae_id!r}: the folder {folder!r} of the Hugging Face repo "
        f"{repo_id!r} is not in the local cache and cannot be fetched ({why}). On a machine with "
        f"a network run `huggingface-cli download {repo_id} --include '{folder}/*'` and copy the "
        f"cache (HF_HUB_CACHE) here, or download the folder and load it with "
        f"interp.dictionaries.load_dictionary(path)."
    )

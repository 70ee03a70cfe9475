"""Running a sweep's shards on a Ray cluster, one Ray task per shard.

Ray (an existing engine: scheduling, retries, many machines) runs :func:`_worker` once per
shard. A task receives only the shard's JSON; its worker process loads the model by name (and
keeps it for the next shard of the same model), so no model is pickled. When a worker process
dies (killed, out of memory, its machine lost), Ray runs the task again elsewhere, up to
``max_retries`` times. The driver stores each finished shard in the sweep folder as it arrives,
so a sweep whose driver is interrupted (Ctrl-C, a lost session) resumes where it stopped: a
rerun computes only the shards not on disk.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from tqdm.auto import tqdm

from .. import _checks
from ..result import Result
from ._folder import SweepFolder
from ._shards import Plan, Shard, gather, run_shard

INSTALL = "pip install 'interp[cluster]' (or pip install 'ray>=2.9')"
LOCAL_OBJECT_STORE = 128 * 1024**2  # bytes; shards return small Results


def _ray():
    _checks.require("ray", "running sweeps on a cluster (interp.sweeps)", INSTALL)
    import ray

    return ray


def connect(address: str = "local", workers: int = 2):
    """Join a Ray cluster (or start a local one); returns the ``ray`` module.

    Arguments:
        address: ``"local"``: start a cluster in this process with ``workers`` CPUs (no
            dashboard, no usage statistics, a small object store); ``"auto"``: join the cluster
            running on this machine (``ray start --head``) or named by ``$RAY_ADDRESS``; else
            an address ``ray.init`` takes (``"ray://head:10001"``, ``"10.0.0.1:6379"``).
        workers: CPUs of the local cluster (with ``address="local"``).

    A cluster already joined in this process is used as it is, whatever ``address`` says.
    """
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"address={address!r} is not accepted; use 'local', 'auto' or an address")
    _checks.positive_int(workers, "workers")
    ray = _ray()
    if ray.is_initialized():
        return ray
    if address == "local":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE,
            log_to_driver=False,
        )
    else:
        ray.init(address=address, log_to_driver=False)
    return ray


def _worker(shard_json: dict, device: str | None, folder: str | None) -> Result:
    """One shard in a Ray worker: mark it running in the sweep folder, compute it, say where."""
    shard = Shard.from_json(shard_json)
    # the driver made the folder; a worker on a machine that does not share it leaves no mark
    mark = SweepFolder(folder) if folder and os.path.isdir(folder) else None
    if mark is not None:
        try:
            mark.mark_running(shard)
        except OSError:  # a read-only share, say: the mark is a courtesy
            mark = None
    try:
        result = run_shard(shard, device)
    finally:
        if mark is not None:
            (mark.path / "running" / f"{shard.key}.json").unlink(missing_ok=True)
    result.provenance["worker"] = {"host": socket.gethostname(), "pid": os.getpid()}
    return result


def sweep(
    plan: Plan,
    *,
    out: str | os.PathLike | None = None,
    address: str = "local",
    workers: int = 2,
    device: str | None = None,
    gpus_per_shard: float = 0,
    max_retries: int = 3,
    progress: bool | Callable[[int, int], None] = True,
) -> Result:
    """Run every shard of ``plan`` as a Ray task and gather the Results into one.

    Arguments:
        plan: from :func:`interp.sweeps.plan`.
        out: the sweep folder (:class:`SweepFolder`): finished shards found there are reused,
            each newly finished one is stored there at once, and the gathered Result is saved
            there as ``result``. Without it nothing is stored and nothing resumes.
        address: the cluster, as :func:`connect` takes it (``"local"``, ``"auto"``, an address).
        workers: shards in flight at once (and the CPUs of a local cluster).
        device: where each worker loads its model (default: ``load_model``'s; a task that asks
            for no GPU sees none, so it is the CPU).
        gpus_per_shard: GPUs Ray reserves for each task (e.g. ``1``, or ``0.5`` to share one).
        max_retries: how many times Ray reruns a shard whose worker process died.
        progress: a progress bar over shards, or a function called with ``(done, total)``.

    Returns:
        One Result with the plan's axes first (see :func:`interp.sweeps.gather`);
        ``provenance["sweep"]`` records which shards were computed and which reused.

    Ray stays joined afterwards, so the next sweep reuses the workers and the models they hold;
    ``ray.shutdown()`` ends a local cluster. A shard that raises (bad input) stops the sweep
    with its own exception; the shards finished before it stay stored.

    Example:
        >>> p = plan("patch", "induction-2l", task="induction", seeds=range(8), normalize=True)
        >>> r = sweep(p, out="sweeps/induction-z", workers=4)
        >>> r.values.mean(0)  # the patching map averaged over the 8 prompt sets
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be an interp.sweeps.Plan (from plan()), got {plan!r}")
    _checks.positive_int(workers, "workers")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries={max_retries!r} is not accepted; use an integer >= 0")
    if isinstance(gpus_per_shard, bool) or not isinstance(gpus_per_shard, int | float):
        raise ValueError(f"gpus_per_shard={gpus_per_shard!r} is not accepted; use a number >= 0")
    if gpus_per_shard < 0:
        raise ValueError(f"gpus_per_shard={gpus_per_shard!r} is not accepted; use a number >= 0")
    folder = SweepFolder(out) if out is not None else None
    done: dict[str, Result] = {}
    if folder is not None:
        folder.tidy()
        folder.save_plan(plan)
        for shard in plan.shards:
            if shard.key not in done and (found := folder.finished(shard)) is not None:
                done[shard.key] = found
    reused = list(done)
    todo = list({s.key: s for s in plan.shards if s.key not in done}.values())
    total = len(reused) + len(todo)
    report = progress if callable(progress) else None
    bar = tqdm(total=total, initial=len(reused), desc="shards", disable=progress is not True)

    def finished() -> None:
        bar.update(1)
        if report is not None:
            report(len(done), total)

    try:
        if report is not None and reused:
            report(len(done), total)
        if todo:
            _run(
                todo, done, folder, address, workers, device, gpus_per_shard, max_retries, finished
            )
    finally:
        bar.close()
    result = gather([done[s.key] for s in plan.shards], plan.axes)
    result.provenance["sweep"] = {
        "plan": plan.key,
        "shards": total,
        "computed": [s.key for s in todo],
        "reused": reused,
        "address": address,
        "workers": workers,
    }
    if folder is not None:
        folder.save_result(result)
    return result


def _run(todo, done, folder, address, workers, device, gpus, retries, finished) -> None:
    """Keep ``workers`` shards in flight; store each as it finishes; cancel the rest on exit."""
    ray = connect(address, workers)
    task = ray.remote(_worker).options(num_cpus=1, num_gpus=gpus, max_retries=retries)
    where = str(folder.path) if folder is not None else None
    queue = list(todo)
    flight: dict = {}
    try:
        while queue or flight:
            while queue and len(flight) < workers:
                shard = queue.pop(0)
                flight[task.remote(shard.to_json(), device, where)] = shard
            ready, _ = ray.wait(list(flight), num_returns=1)
            shard = flight.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as err:
                cause = getattr(err, "cause", None)
                raise (cause if isinstance(cause, Exception) else err) from None
            if folder is not None:
                folder.save_shard(shard, result)
            done[shard.key] = result
            finished()
    finally:
        for ref in flight:
            ray.cancel(ref)

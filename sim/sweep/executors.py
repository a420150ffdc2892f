"""Executors behind one interface: serial, process pool, Dask. Results arrive as they finish."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from sim.errors import ConfigError

EXECUTORS = ("serial", "process", "dask")


def _safe(fn: Callable, task: Any) -> tuple[Any, Any, str]:
    try:
        return task, fn(task), ""
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded, the sweep goes on
        return task, None, f"{type(exc).__name__}: {exc}"


def run_all(fn: Callable, tasks: list, executor: str = "process", workers: int | None = None,
            scheduler: str | None = None) -> Iterator[tuple[Any, Any, str]]:
    """Yield ``(task, result, error)`` for every task, in completion order."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", key="--executor", allowed=", ".join(EXECUTORS))
    if not tasks:
        return
    if executor == "serial" or (executor == "process" and (workers or os.cpu_count() or 1) == 1):
        for task in tasks:
            yield _safe(fn, task)
        return
    if executor == "process":
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            pending = {pool.submit(_safe, fn, t) for t in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        return
    yield from _run_dask(fn, tasks, workers, scheduler)


def _run_dask(fn: Callable, tasks: list, workers: int | None, scheduler: str | None):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("the dask executor needs the optional extra: pip install 'keepalive-sim[dask]'",
                          key="--executor", allowed="serial, process") from None
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(_safe, fn, t, pure=False) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

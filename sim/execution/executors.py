"""Executors behind one interface: serial, process pool, Dask. Results arrive as they finish.

The process pool keeps at most ``IN_FLIGHT_PER_WORKER`` tasks per worker submitted, so that:
* a worker that dies (out of memory, killed) costs only the tasks in flight: they are run again one
  at a time, each in a process of its own; the one that kills its process again is reported failed
  with the reason, and the rest of the sweep goes on in a new pool;
* stopping (Ctrl-C, an error) cancels the queued tasks and terminates the workers at once;
* workers never outlive the parent: each asks the kernel for SIGKILL when its parent dies
  (PR_SET_PDEATHSIG, Linux), or else watches its parent from a thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sim.errors import ConfigError
from sim.output import OutputError

EXECUTORS = ("serial", "process", "dask")
#: tasks submitted per worker at a time: enough to keep workers busy, few to re-run after a crash
IN_FLIGHT_PER_WORKER = 2
#: seconds to wait for a Dask scheduler before giving up (exit 2)
DASK_CONNECT_TIMEOUT_S = 5
#: how often (seconds) a worker without PR_SET_PDEATHSIG checks that its parent is alive
PARENT_POLL_S = 1.0
_PR_SET_PDEATHSIG = 1

Result = tuple[Any, Any, str]


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _safe(fn: Callable, task: Any) -> Result:
    try:
        return task, fn(task), ""
    except OutputError:
        raise  # the results folder cannot be written: stop the sweep, not just this task
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded, the sweep goes on
        return task, None, f"{type(exc).__name__}: {exc}"


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` does, however it dies (kill -9 included)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(PARENT_POLL_S)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_init(parent_pid: int) -> None:
    # Ctrl-C reaches the whole process group; the parent handles it and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def run_all(fn: Callable, tasks: list, executor: str = "process", workers: int | None = None,
            scheduler: str | None = None) -> Generator[Result, None, None]:
    """Yield ``(task, result, error)`` for every task, in completion order. Close the generator
    (or let an exception pass through it) to stop: queued tasks are cancelled, workers terminated."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", key="--executor", allowed=", ".join(EXECUTORS))
    if not tasks:
        return
    n = workers or available_cores()
    if executor == "serial" or (executor == "process" and n == 1):
        for task in tasks:
            yield _safe(fn, task)
        return
    if executor == "process":
        yield from _run_pool(fn, tasks, n)
        return
    yield from _run_dask(fn, tasks, workers, scheduler)


def _run_pool(fn: Callable, tasks: list, workers: int) -> Generator[Result, None, None]:
    queue = deque(tasks)
    while queue:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),))
        inflight: dict[Future, Any] = {}
        suspects: list = []
        broken = finished = False
        try:
            while (queue or inflight) and not broken:
                while queue and len(inflight) < IN_FLIGHT_PER_WORKER * workers:
                    try:
                        fut = pool.submit(_safe, fn, queue[0])
                    except BrokenProcessPool:
                        broken = True
                        break
                    inflight[fut] = queue.popleft()
                if broken:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        suspects.append(task)
                        broken = True
                        continue
                    yield result
            suspects += inflight.values()  # a worker died: every task in flight is a suspect
            if broken and not suspects:
                suspects.append(queue.popleft())  # it broke before taking any task: never loop forever
            finished = True
        finally:
            _stop(pool, graceful=finished and not broken)
        # Each suspect alone in a process of its own: the culprit is the one that dies again.
        for task in suspects:
            yield _isolated(fn, task)


def _stop(pool: ProcessPoolExecutor, graceful: bool) -> None:
    """Shut the pool down; unless ``graceful``, cancel what is queued and terminate the workers."""
    if graceful:
        pool.shutdown(wait=True)
        return
    processes = getattr(pool, "_processes", None)  # no public handle on the workers before 3.14
    procs = list(processes.values()) if isinstance(processes, dict) else []
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()


def _isolated(fn: Callable, task: Any) -> Result:
    """Run one task in a new process; when that process dies, the task failed and this says why."""
    import multiprocessing

    ctx = multiprocessing.get_context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_isolated_child, args=(send, fn, task, os.getpid()), daemon=True)
    proc.start()
    send.close()
    try:
        try:
            kind, payload = recv.recv()
        except EOFError:
            proc.join()
            return task, None, f"WorkerDied: {_death(proc.exitcode)}"
        proc.join()
        if kind == "raise":
            raise payload
        return payload
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
            proc.join()


def _isolated_child(send: Any, fn: Callable, task: Any, parent_pid: int) -> None:
    _worker_init(parent_pid)
    try:
        out: tuple = ("ok", _safe(fn, task))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        out = ("raise", exc)
    send.send(out)
    send.close()


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process exited with code {exitcode}"


def _run_dask(fn: Callable, tasks: list, workers: int | None, scheduler: str | None) -> Generator[Result, None, None]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("the dask executor needs the optional extra: pip install 'keepalive-sim[dask]'",
                          key="--executor", allowed="serial, process") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler within {DASK_CONNECT_TIMEOUT_S} s "
                              f"({type(exc).__name__}: {exc})", file="<command line>", key="--scheduler",
                              allowed="a running scheduler's address, e.g. tcp://10.0.0.5:8786") from None
    else:
        cluster = LocalCluster(n_workers=workers or available_cores(), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    pending: set = set()
    try:
        pending = {client.submit(_safe, fn, t, pure=False) for t in tasks}
        for fut in as_completed(list(pending)):
            result = fut.result()
            # forgotten once taken: the cluster holds no finished result (run --executor dask streams
            # each chunk's rows to disk; memory stays that of the chunks in flight)
            pending.discard(fut)
            fut.release()
            yield result
    finally:
        client.cancel(list(pending))
        client.close()
        if cluster is not None:
            cluster.close()

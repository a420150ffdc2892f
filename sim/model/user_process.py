"""User-written traffic processes (``traffic.process: module:function``, docs/config.md).

Each client slot's requests can come from a SimPy process the user wrote::

    def nightly_batch(env, conn, rng, **params):
        while True:
            reply = yield conn.request()
            yield env.timeout(params["period_s"])

It runs on a real ``simpy.Environment`` (``env.now`` is simulated seconds) through SimPy's public
API only: the model's scheduler wakes the environment at ``env.peek()`` and steps it through what is
due (``Scheduler.watch_env``), and a reply is an event that succeeds at the engine's time. Only the
slots of such a run pay SimPy's price per event; built-in traffic never creates an environment.

Anything the user's code raises, and a module or function that cannot be found, is a
``ProcessError``: one line naming ``module:function`` and the error, exit code 2. This module is
plain Python (not compiled): it holds the glue between the user's code and the compiled model.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import math
import sys
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import simpy

from sim.errors import ProcessError


class Reply:
    """The outcome of one ``conn.request()``; never an exception. ``ok``: answered with a success;
    ``reason``: None, or why it failed as the records spell it (sim.facts.names.FAILURE_REASONS);
    ``latency_s``: seconds from the call to the answer."""

    __slots__ = ("ok", "reason", "latency_s")

    def __init__(self, ok: bool, reason: str | None, latency_s: float) -> None:
        self.ok = ok
        self.reason = reason
        self.latency_s = latency_s

    def __repr__(self) -> str:
        return f"Reply(ok={self.ok}, reason={self.reason!r}, latency_s={self.latency_s:.6f})"


class _EngineFault(BaseException):
    """A model error inside ``conn.request()`` / ``conn.close()``: an internal error (exit 1), not the
    user's, and not catchable by the user's ``except Exception``."""


def describe(exc: BaseException) -> str:
    """``Type: message (file.py:LINE)``, with the innermost frame of the traceback."""
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if frames:
        text += f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


class SlotConn:
    """The ``conn`` a traffic process gets: its client slot's current connection."""

    __slots__ = ("_slot", "_procs")

    def __init__(self, slot: Any, procs: UserProcesses) -> None:
        self._slot = slot
        self._procs = procs

    def request(self, size_bytes: int | None = None, service_time_s: float | None = None) -> simpy.Event:
        """Send one request on the slot's connection (a new one if it has none) and return the event
        to yield for its ``Reply``. ``size_bytes`` defaults to ``traffic.request_bytes`` and
        ``service_time_s`` to a draw from ``traffic.service_time``. One request at a time."""
        if size_bytes is not None and (isinstance(size_bytes, bool) or not isinstance(size_bytes, int)
                                       or size_bytes < 0):
            raise ProcessError.of(self._procs.target, f"conn.request(size_bytes={size_bytes!r}): "
                                                      "not a whole number of bytes >= 0")
        if service_time_s is not None and (isinstance(service_time_s, bool)
                                           or not isinstance(service_time_s, (int, float))
                                           or not 0 <= service_time_s < math.inf):
            raise ProcessError.of(self._procs.target, f"conn.request(service_time_s={service_time_s!r}): "
                                                      "not a number of seconds >= 0")
        slot = self._slot
        if slot.reply is not None:
            raise ProcessError.of(self._procs.target, "conn.request() while the previous request is still "
                                                      "waiting: yield its reply first (one request at a time)")
        event = self._procs.env.event()
        try:
            slot.request(-1 if size_bytes is None else size_bytes,
                         -1.0 if service_time_s is None else float(service_time_s), event)
        except Exception as exc:
            raise _EngineFault(exc) from exc
        return event

    def close(self) -> None:
        """Close the client's socket (FIN). A request still waiting fails with ``client_timeout``;
        the next ``request()`` opens a new connection."""
        try:
            self._slot.close_conn()
        except Exception as exc:
            raise _EngineFault(exc) from exc

    def __repr__(self) -> str:
        return f"<conn of client slot {self._slot.index}>"


def delay_to(now_s: float, t_s: float) -> float:
    """A delay d with ``now_s + d == t_s`` exactly in floating point, as SimPy computes an event's
    time, so that SimPy's clock lands on the engine's time to the last bit."""
    d = t_s - now_s
    for _ in range(64):
        at = now_s + d
        if at == t_s:
            return d
        d = math.nextafter(d, math.inf if at < t_s else -math.inf)
    raise AssertionError(f"no delay from {now_s!r} lands on {t_s!r}")


class UserProcesses:
    """One world's traffic processes: their SimPy environment, and the glue to the scheduler."""

    def __init__(self, sched: Any, target: str, fn: Callable[..., Any], params: dict[str, Any],
                 env: simpy.Environment | None = None) -> None:
        #: one environment for the world: traffic classes with processes of their own share it
        self.env = env if env is not None else simpy.Environment()
        self.sched = sched
        self.target = target
        self.fn = fn
        self.params = params

    def start(self, slot: Any, open_s: float, rng: Any) -> None:
        """Start ``slot``'s process: it opens the slot's first connection at ``open_s``, then runs."""
        self.env.process(self._drive(slot, open_s, rng))

    def next_time(self) -> float:
        """The time of the environment's next event (infinity when it has none)."""
        return float(self.env.peek())

    def run_until(self, at_s: float) -> int:
        """Process every SimPy event due by ``at_s`` (the scheduler's time); how many ran."""
        env = self.env
        n = 0
        try:
            while env.peek() <= at_s:
                env.step()
                n += 1
        except ProcessError:
            raise
        except _EngineFault as fault:
            raise fault.args[0] from None  # the model's own error: exit 1, with its traceback
        except Exception as exc:  # a process the user's code started itself (env.process) failed
            raise ProcessError.of(self.target, describe(exc)) from exc
        return n

    def answer(self, event: simpy.Event, reason: str, latency_s: float) -> None:
        """Trigger ``event`` now, the engine's time, with the reply to a request (``reason`` "": ok)."""
        reply = Reply(not reason, reason or None, latency_s)
        env = self.env
        t = self.sched.now_s
        if env.now == t:
            event.succeed(reply)
        else:  # SimPy's clock is behind (nothing of it was due): an event at exactly t brings it there
            timer = env.timeout(delay_to(env.now, t))
            timer.callbacks.append(lambda _timer: event.succeed(reply))
        self.sched.watch_env()

    def _drive(self, slot: Any, open_s: float, rng: Any) -> Generator[simpy.Event, Any, None]:
        """The SimPy process of one slot: open its connection at ``open_s``, then run the user's
        generator, passing its events to SimPy and turning whatever it raises into a ProcessError."""
        if open_s > 0:
            yield self.env.timeout(open_s)
        try:
            slot.open()
        except Exception as exc:
            raise _EngineFault(exc) from exc
        try:
            gen = self.fn(self.env, SlotConn(slot, self), rng, **self.params)
        except Exception as exc:
            raise ProcessError.of(self.target, describe(exc)) from None
        if not inspect.isgenerator(gen):
            raise ProcessError.of(self.target, f"returned {type(gen).__name__}, not a generator (the function "
                                               "must yield SimPy events, e.g. `yield env.timeout(60)`)")
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                event = gen.send(value) if error is None else gen.throw(error)
            except StopIteration:
                return  # the process is over: the slot sends nothing more
            except ProcessError:
                raise
            except Exception as exc:
                raise ProcessError.of(self.target, describe(exc)) from None
            if not isinstance(event, simpy.Event):
                raise ProcessError.of(self.target, f"yielded {event!r}, not a SimPy event (allowed: "
                                                   "env.timeout(s), conn.request(), any event of env)")
            try:
                value, error = (yield event), None
            except Exception as exc:  # an event it waited on failed: the process may handle that
                value, error = None, exc


def load_process(target: str, folder: str) -> Callable[..., Any]:
    """The function ``module:function`` names, importing the module from ``folder`` (the config
    file's folder, put first on sys.path as a script's folder is) or from sys.path."""
    module_name, _, func_name = target.partition(":")
    if folder:
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    importlib.invalidate_caches()
    try:
        module = _import(module_name, folder)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            where = f"{folder} (the config's folder)" if folder else "the current folder"
            raise ProcessError.of(target, f"no module named {exc.name!r} in {where} or on sys.path") from None
        raise ProcessError.of(target, f"importing {module_name}: {describe(exc)}") from None
    except Exception as exc:
        raise ProcessError.of(target, f"importing {module_name}: {describe(exc)}") from None
    fn = getattr(module, func_name, None)
    if fn is None:
        raise ProcessError.of(target, f"module {module_name} ({getattr(module, '__file__', '?')}) has no "
                                      f"function {func_name!r}")
    if not callable(fn):
        raise ProcessError.of(target, f"{module_name}.{func_name} is a {type(fn).__name__}, not a function")
    return fn


def _import(name: str, folder: str) -> Any:
    """``importlib.import_module(name)``, except that a module of that name imported earlier from
    another place is imported again when ``folder`` has its own (two configs, two folders)."""
    cached = sys.modules.get(name)
    top = name.split(".")[0]
    if cached is not None and folder and importlib.machinery.PathFinder.find_spec(top, [folder]) is not None:
        file = getattr(cached, "__file__", None)
        if file is None or not Path(file).resolve().is_relative_to(Path(folder).resolve()):
            for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
                del sys.modules[key]
    return importlib.import_module(name)

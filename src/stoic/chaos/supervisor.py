"""`Supervisor`: starts and keeps local processes labelled app / region / zone."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

from ._listeners import Listeners
from ._spawn import Watchdog, free_port, http_ok, port_open, signal_group, spawn
from .fleet import Fleet
from .instance import LIVE_STATUSES, Instance

log = logging.getLogger("stoic.chaos.supervisor")

#: lifecycle events passed to `Supervisor.listen` callbacks
EVENTS = ("started", "healthy", "died", "stopped")

Listener = Callable[[str, Instance], None]


class Supervisor:
    """Starts local processes, watches them, replaces the dead ones, and stops them all at the end.

    Every child runs in its own process group, and every signal goes to the whole group, also after
    the child itself has exited: nothing it started outlives it. On Linux the kernel SIGKILLs a child
    if the supervising process dies; children are spawned from one long-lived thread, which lives
    until `close()` has stopped them all, because Linux ties that death signal to the spawning
    *thread*. A small watchdog process then kills the rest of each group (see `_watchdog`).

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        *,
        log_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        poll_interval: float = 0.05,
        health_timeout: float = 0.5,
    ) -> None:
        if poll_interval <= 0 or poll_interval > 5:
            raise ValueError(f"poll_interval must be in (0, 5] seconds; got {poll_interval!r}")
        if health_timeout <= 0:
            raise ValueError(f"health_timeout must be > 0 seconds; got {health_timeout!r}")
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._env = dict(env or {})
        self._poll = poll_interval
        self._health_timeout = health_timeout
        self._lock = threading.RLock()
        self._instances: dict[str, Instance] = {}
        self._due: dict[str, float] = {}  # instance id -> monotonic time of its replacement
        self._listeners: Listeners[Listener] = Listeners()
        self._requests: queue.Queue[tuple[Instance, Future[None]]] = queue.Queue()
        self._closed = threading.Event()  # no more starts or replacements
        self._retire = threading.Event()  # the keeper may end: every child has been stopped
        self._watchdog: Watchdog | None = None
        self._keeper = threading.Thread(target=self._keep, name="stoic-supervisor", daemon=True)
        self._keeper.start()
        atexit.register(self.close)

    # -- public API -----------------------------------------------------------------------------

    def start(
        self,
        argv: Sequence[str],
        *,
        app: str,
        region: str = "local",
        zone: str = "local-a",
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        port: int | None = None,
        health_url: str | None = None,
        probe: Callable[[Instance], bool] | None = None,
        restart_after: float | None = None,
        owner: str | None = None,
        wait: bool = False,
        timeout: float = 15.0,
    ) -> Instance:
        """Start one instance and return its record.

        ``port=0`` picks a free port. ``{port}``, ``{app}``, ``{region}``, ``{zone}`` and ``{id}`` in
        `argv`, `env` values and `health_url` are replaced. Health is `probe(instance)` if given, else
        GET `health_url` answering 2xx, else a TCP connect to `port`, else "the process is running".
        ``restart_after=s`` replaces the instance s seconds after it dies (None: stays dead).
        ``wait=True`` blocks until healthy (see `wait_healthy`).
        """
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty sequence of strings")
        for label, value in (("app", app), ("region", region), ("zone", zone)):
            if not isinstance(value, str) or not value or "/" in value:
                raise ValueError(f"{label} must be a non-empty string without '/'; got {value!r}")
        if port is not None and not (0 <= port <= 65535):
            raise ValueError(f"port must be in 0..65535 (0 = pick a free one); got {port!r}")
        if restart_after is not None and restart_after < 0:
            raise ValueError(f"restart_after must be >= 0 seconds or None; got {restart_after!r}")
        if port == 0:
            port = free_port()
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("this Supervisor is closed")
            iid = name or self._next_id(app, zone)
            if iid in self._instances:
                raise ValueError(f"an instance named {iid!r} already exists")
            subst = {"{port}": str(port or ""), "{app}": app, "{region}": region, "{zone}": zone, "{id}": iid}
            inst = Instance(
                id=iid,
                app=app,
                region=region,
                zone=zone,
                argv=tuple(_fill(a, subst) for a in argv),
                env={k: _fill(v, subst) for k, v in (env or {}).items()},
                cwd=os.fspath(cwd) if cwd is not None else None,
                port=port,
                health_url=_fill(health_url, subst) if health_url else None,
                probe=probe,
                restart_after=restart_after,
                owner=owner,
            )
            self._instances[iid] = inst
        self._spawn(inst)
        if wait:
            self.wait_healthy(inst, timeout=timeout)
        return inst

    def wait_healthy(self, instances: Instance | Iterable[Instance], timeout: float = 15.0) -> None:
        """Block until every instance passes its health check.

        Raises `TimeoutError` (naming the instances still unhealthy) or `RuntimeError` if one exits
        and no replacement is scheduled.
        """
        todo = [instances] if isinstance(instances, Instance) else list(instances)
        deadline = time.monotonic() + timeout
        while todo:
            for inst in list(todo):
                if inst.healthy or (inst.alive and self._check(inst)):
                    todo.remove(inst)
                elif inst.status in ("dead", "stopped") and inst.id not in self._due:
                    raise RuntimeError(
                        f"instance {inst.id} exited with code {inst.exit_code} before becoming healthy"
                        + (f" (log: {self.log_path(inst)})" if self.log_dir else "")
                    )
            if not todo:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(i.id for i in todo)
                raise TimeoutError(f"not healthy after {timeout:.1f}s: {names}")
            time.sleep(self._poll)

    def is_healthy(self, instance: Instance) -> bool:
        """Run the health check now."""
        return instance.alive and self._check(instance)

    def kill(self, instance: Instance) -> bool:
        """SIGKILL the instance's process group now, as a failing host would; returns False if not alive.

        The instance is replaced after `restart_after` seconds if set.
        """
        with self._lock:
            proc = instance._process
        if proc is None or proc.poll() is not None:
            return False
        signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)
        self._exited(instance, proc)
        return True

    def stop(self, instance: Instance, timeout: float = 5.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after `timeout`); a stopped instance is not replaced."""
        with self._lock:
            self._due.pop(instance.id, None)
            proc = instance._process
            if proc is None or proc.poll() is not None:
                if proc is not None:
                    self._exited(instance, proc)
                if instance.status != "stopped":
                    instance.status = "stopped"
                    self._emit("stopped", instance)
                return
            instance.status = "stopping"
        _terminate([proc], timeout)
        self._exited(instance, proc)

    def restart(self, instance: Instance, timeout: float = 5.0) -> None:
        """Stop the instance and start it again now (same id, port and labels)."""
        self.stop(instance, timeout=timeout)
        with self._lock:
            instance.restarts += 1
        self._spawn(instance)

    def remove(self, instance: Instance, timeout: float = 5.0) -> None:
        """Stop the instance and forget it."""
        self.stop(instance, timeout=timeout)
        with self._lock:
            self._instances.pop(instance.id, None)

    def get(self, instance_id: str) -> Instance:
        """The instance with this id (`KeyError` if unknown)."""
        with self._lock:
            return self._instances[instance_id]

    @property
    def instances(self) -> list[Instance]:
        with self._lock:
            return list(self._instances.values())

    def fleet(self) -> Fleet:
        """A `Fleet` view of every instance (use `.alive()` for the running ones)."""
        return Fleet(self.instances)

    def listen(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(event, instance)`` on lifecycle events (see `EVENTS`); returns an unsubscribe."""
        return self._listeners.add(fn)

    def log_path(self, instance: Instance) -> Path | None:
        """Where the instance's stdout and stderr go (None: discarded)."""
        return self.log_dir / f"{instance.id}.log" if self.log_dir is not None else None

    def close(self, timeout: float = 5.0) -> None:
        """Stop every instance (SIGTERM, then SIGKILL after `timeout`) and the keeper thread."""
        if self._closed.is_set():
            return
        with self._lock:
            self._closed.set()
            self._due.clear()
            running = []
            for inst in self._instances.values():
                if inst._process is not None and inst._process.poll() is None:
                    inst.status = "stopping"
                    running.append((inst, inst._process))
        _terminate([p for _, p in running], timeout)
        for inst, proc in running:
            self._exited(inst, proc)
        self._retire.set()  # only now: the keeper's end would SIGKILL children it spawned
        self._keeper.join(timeout=2)
        if self._watchdog is not None:
            self._watchdog.close()
        atexit.unregister(self.close)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Supervisor({len(self._instances)} instances)"

    # -- internals ------------------------------------------------------------------------------

    def _next_id(self, app: str, zone: str) -> str:
        n = 1
        while f"{app}-{zone}-{n}" in self._instances:
            n += 1
        return f"{app}-{zone}-{n}"

    def _spawn(self, inst: Instance) -> None:
        """Spawn on the keeper thread (see class docstring) and wait for the result."""
        if threading.current_thread() is self._keeper:
            self._do_spawn(inst)
            return
        done: Future[None] = Future()
        self._requests.put((inst, done))
        done.result(timeout=30)

    def _do_spawn(self, inst: Instance) -> None:
        env = {**os.environ, **self._env, **inst.env}
        env.update(STOIC_INSTANCE=inst.id, STOIC_APP=inst.app, STOIC_REGION=inst.region, STOIC_ZONE=inst.zone)
        if inst.port is not None:
            env["STOIC_PORT"] = str(inst.port)
        if self._watchdog is None:
            self._watchdog = Watchdog()
        proc = spawn(inst.argv, env, inst.cwd, self.log_path(inst))
        self._watchdog.watch(proc.pid)
        with self._lock:
            inst._process = proc
            inst.pid = proc.pid
            inst.exit_code = None
            inst.status = "starting"
            inst.started_at = time.time()
            inst.healthy_at = None
        self._emit("started", inst)

    def _check(self, inst: Instance) -> bool:
        try:
            if inst.probe is not None:
                ok = bool(inst.probe(inst))
            elif inst.health_url:
                ok = http_ok(inst.health_url, self._health_timeout)
            elif inst.port:
                ok = port_open(inst.port, timeout=self._health_timeout)
            else:
                ok = True
        except Exception:  # a broken probe means "not healthy", never a dead keeper
            log.exception("health probe of %s raised", inst.id)
            ok = False
        if ok:
            with self._lock:
                if inst.status == "starting" and inst.alive:
                    inst.status = "running"
                    inst.healthy_at = time.time()
                else:
                    return inst.status == "running"
            self._emit("healthy", inst)
        return ok

    def _exited(self, inst: Instance, proc: subprocess.Popen[bytes]) -> None:
        """Record an exit once per process, and schedule the replacement if the instance has one."""
        with self._lock:
            if inst._process is not proc:
                return
            inst._process = None
            inst.exit_code = proc.returncode
            deliberate = inst.status == "stopping" or self._closed.is_set()
            inst.status = "stopped" if deliberate else "dead"
            if not deliberate and inst.restart_after is not None:
                self._due[inst.id] = time.monotonic() + inst.restart_after
        # whatever the child started goes with it (a replacement starts a fresh group)
        signal_group(proc, signal.SIGKILL)
        if self._watchdog is not None:
            self._watchdog.forget(proc.pid)
        self._emit("stopped" if deliberate else "died", inst)

    def _keep(self) -> None:
        while not self._retire.is_set():
            try:
                inst, done = self._requests.get(timeout=self._poll)
            except queue.Empty:
                pass
            else:
                try:
                    self._do_spawn(inst)
                except BaseException as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)
                continue
            try:
                self._tick()
            except Exception:
                log.exception("supervisor keeper tick failed")
        # unblock anyone still waiting for a spawn
        while True:
            try:
                _, done = self._requests.get_nowait()
            except queue.Empty:
                break
            done.set_exception(RuntimeError("this Supervisor is closed"))

    def _tick(self) -> None:
        with self._lock:
            watched = [(i, i._process) for i in self._instances.values() if i._process is not None]
            now = time.monotonic()
            due = [self._instances[k] for k, t in self._due.items() if t <= now and k in self._instances]
        for inst, proc in watched:
            if proc is not None and proc.poll() is not None:
                self._exited(inst, proc)
        for inst in due:
            with self._lock:
                # still wanted? (stop() or close() may have cancelled it meanwhile)
                if self._closed.is_set() or inst.status != "dead" or inst.id not in self._due:
                    self._due.pop(inst.id, None)
                    continue
                inst.restarts += 1
            try:
                self._do_spawn(inst)
            finally:
                # dropped only now, so wait_healthy never sees "dead and nothing scheduled" in between
                with self._lock:
                    self._due.pop(inst.id, None)
        for inst, _ in watched:
            if inst.status == "starting" and inst.alive:
                self._check(inst)

    def _emit(self, event: str, inst: Instance) -> None:
        for fn in self._listeners.snapshot():
            try:
                fn(event, inst)
            except Exception:
                log.exception("supervisor listener %r failed on %s", fn, event)


def _fill(text: str, subst: Mapping[str, str]) -> str:
    # plain replace, not str.format: argv often holds code with braces
    for key, value in subst.items():
        text = text.replace(key, value)
    return text


def _terminate(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM every group, wait up to `timeout` in total for the children, then SIGKILL the groups
    of those still running (what an exited child left behind goes in `_exited`)."""
    for p in procs:
        signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(p, signal.SIGKILL)
            p.wait(timeout=10)


__all__ = ["EVENTS", "LIVE_STATUSES", "Listener", "Supervisor"]

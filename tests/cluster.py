"""A real multi-node Ray cluster on this machine, for the cluster tests and the scaling benchmark.

Each node is its own ``ray start`` with its own temp dir and resources, as on separate machines:

* everything lives in a private network namespace that has only loopback (``unshare --net``): the cluster's
  servers, and the drivers the tests run in it, can reach nothing but each other, and no port clashes with any
  other Ray on the machine. A private process-ID namespace hides every other process (Ray's own scans for
  running clusters cannot find another engineer's runtime). The namespaces are held by one process (the
  *holder*, the PID namespace's init, which reaps orphans); every other process enters them with ``nsenter``.
* the holder also has a private mount namespace in which ``/tmp/ray`` (Ray's default temp dir, where ``ray start``
  leaves its address file) is this cluster's own folder: the head uses the default temp dir, so a driver in the
  namespace finds the cluster exactly as it would find one ``ray start`` left on a machine, and nothing on the
  machine's real ``/tmp/ray`` is touched.
* the head has no CPUs (``--num-cpus 0``): no trial can run beside the driver.
* each worker node runs in a nested mount namespace in which the driver-side paths (the zoo cache, the test's tmp
  dir: ``hidden``) are covered by an empty tmpfs, so whatever a trial reads must travel through Ray. A worker
  node carries a custom resource named after it (``{name: 1}``), so a driver can tell the nodes apart.

Clean-up kills the holder (the kernel then kills every process in its PID namespace) and any process left in this
cluster's network namespace: all were started here, so nothing else on the machine, such as another engineer's
Ray, is touched; never ``ray stop``. A worker node is
"lost" by killing every process in its mount namespace at once, as when a machine dies.

Needs Linux, root (or user namespaces) for ``unshare``/``nsenter``/``mount``, and ``ip``; :func:`unavailable`
says why not, so tests can skip with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

HEAD_PORT = 6379
#: each ``ray start`` attempt takes the next 10 ports from here for its agents and managers (below Linux's
#: ephemeral range, above Ray's default worker ports 10002-19999)
PORT_BASE = 21000
#: network (loopback only), mount and process-ID namespaces; /proc shows only the cluster's processes, so nothing
#: in it (Ray's look-ups of running clusters included) sees another Ray on the machine
UNSHARE_FLAGS = ("--net", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc")
#: `ray start`, more patient: it gives a new raylet 30 s (hard-coded) to register with the GCS, and the agents a
#: raylet waits for are Python processes that took longer than that to start on a 2-core machine shared with other
#: test runs (load average 20-35). The same command, only its look-up of the new node retried for up to 4 minutes.
_PATIENT_RAY_START = """
import time
import ray._private.services as services
from ray.scripts.scripts import main

look_up = services.get_node

def patient(*args, **kwargs):
    deadline = time.monotonic() + 240
    while True:
        try:
            return look_up(*args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

services.get_node = patient
main()
"""
#: the namespace's init: reaps every orphan (the daemons `ray start` leaves) so none lingers as a zombie
_REAPER = """
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.5)
"""
OBJECT_STORE_BYTES = 200_000_000
START_TIMEOUT_S = 300.0


def unavailable() -> str | None:
    """Why a namespaced local cluster cannot start here (None when it can)."""
    if not sys.platform.startswith("linux"):
        return "the local multi-node cluster needs Linux namespaces"
    for tool in ("unshare", "nsenter", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"the local multi-node cluster needs `{tool}` (util-linux / iproute2)"
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed in this Python"
    try:
        probe = subprocess.run(
            ["unshare", *UNSHARE_FLAGS, "ip", "link", "set", "lo", "up"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`unshare` could not run: {e}"
    if probe.returncode != 0:
        return (
            "`unshare --net --mount` is not permitted here (needs root or user namespaces): "
            + (probe.stderr.strip() or f"exit {probe.returncode}")[:200]
        )
    return None


def _ns(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _children(pid: int) -> list[int]:
    found = []
    for p in _pids():
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(p)
    return found


@dataclass
class Node:
    """One ``ray start`` of the cluster."""

    name: str
    temp_dir: Path
    num_cpus: int
    mount_ns: str | None  # the worker node's own mount namespace (None for the head: it shares the holder's)
    log: Path

    def pids(self) -> list[int]:
        """The processes of this node (worker nodes only: those in its mount namespace)."""
        if self.mount_ns is None:
            return []
        return [p for p in _pids() if _ns(p, "mnt") == self.mount_ns]


class LocalCluster:
    """A head and worker nodes, each its own ``ray start``, in a private network namespace (see the module).

    Use as a context manager, or call :meth:`close`. ``hidden`` paths (folders) are covered by an empty tmpfs on
    every worker node. ``env`` is added to every node's and driver's environment.
    """

    def __init__(
        self,
        *,
        hidden: Sequence[str | Path] = (),
        env: Mapping[str, str] | None = None,
        object_store_bytes: int = OBJECT_STORE_BYTES,
    ):
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        # short: Ray's unix sockets live under each node's temp dir (a socket path holds at most 107 bytes)
        self.root = Path(tempfile.mkdtemp(prefix="qtc-", dir="/tmp"))
        paths = {Path(p).resolve() for p in hidden}
        # a folder inside another hidden one is hidden with it (and its mount point is gone under the tmpfs)
        self.hidden = sorted(p for p in paths if not any(o != p and p.is_relative_to(o) for o in paths))
        self.object_store_bytes = object_store_bytes
        base = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env: dict[str, str] = {
            **base,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token",  # joining a cluster needs the token (~/.ray/auth_token)
            # a raylet gives its agents (Python processes) this long to come up; 30 s by default
            "RAY_agent_register_timeout_ms": "240000",
            **(env or {}),
        }
        self.nodes: dict[str, Node] = {}
        self.holder: int | None = None
        self._attempts = 0
        self.net_ns: str | None = None
        self.address = f"127.0.0.1:{HEAD_PORT}"
        (self.root / "ray").mkdir()
        # the holder: owns the namespaces. It is the process-ID namespace's init, so it reaps the processes
        # `ray start` leaves behind, and when it dies the kernel kills everything inside
        self._unshare = subprocess.Popen(
            [
                "unshare",
                *UNSHARE_FLAGS,
                "bash",
                "-c",
                'ip link set lo up && mkdir -p /tmp/ray && mount --bind "$1" /tmp/ray && echo ready '
                '&& exec "$2" -c "$3"',
                "holder",
                str(self.root / "ray"),
                sys.executable,
                _REAPER,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self._unshare.stdout is not None
        line = self._unshare.stdout.readline().strip()
        children = _children(self._unshare.pid)
        if line != "ready" or len(children) != 1:
            err = self._unshare.stderr.read() if self._unshare.stderr else ""
            self.close()
            raise RuntimeError(f"could not set up the cluster's namespaces: {err.strip()[:300]}")
        self.holder = children[0]
        self.net_ns = _ns(self.holder, "net")

    # ------------------------------------------------------------------ running things inside the namespace

    @staticmethod
    def _cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    def enter(self, cwd: str | Path | None = None) -> list[str]:
        """The argv prefix that runs a command inside the cluster's namespaces, in ``cwd`` (entering a mount
        namespace moves a process to the holder's working directory, /, so Popen's ``cwd`` alone is lost)."""
        wd = [f"--wd={Path(cwd).resolve()}"] if cwd is not None else []
        return ["nsenter", "-t", str(self.holder), "--net", "--mount", "--pid", *wd, "--"]

    def driver_env(
        self, extra: Mapping[str, str | None] | None = None, *, join: bool = True
    ) -> dict[str, str]:
        """The environment of a driver in the namespace: ``RAY_ADDRESS`` names the head (``join=False``: unset).
        A value of None in ``extra`` removes that variable."""
        env = dict(self.env)
        if join:
            env["RAY_ADDRESS"] = self.address
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
        cwd: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to its end inside the namespace (a driver: it sees the driver's file system)."""
        return subprocess.run(
            [*self.enter(cwd), *argv],
            env=dict(env if env is not None else self.driver_env()),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )

    def popen(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = subprocess.PIPE,
    ) -> subprocess.Popen[str]:
        """Start ``argv`` inside the namespace and return at once."""
        return subprocess.Popen(
            [*self.enter(cwd), *argv],
            env=dict(env if env is not None else self.driver_env()),
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )

    # ------------------------------------------------------------------ nodes

    def _start_args(self, num_cpus: int, extra: Sequence[str]) -> list[str]:
        # fixed ports for the node's agents (free by construction: the namespace is ours): with port 0 the raylet
        # waits for each agent to write its port to a file and aborts after 15 s, which a busy machine overran
        base = PORT_BASE + 10 * self._attempts
        self._attempts += 1
        return [
            sys.executable,
            "-c",
            _PATIENT_RAY_START,
            "start",
            "--include-log-monitor",
            "false",  # drivers here never print workers' logs; one Python process less per node
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(num_cpus),
            "--object-store-memory",
            str(self.object_store_bytes),
            "--disable-usage-stats",
            "--dashboard-agent-listen-port",
            str(base + 1),
            "--dashboard-agent-grpc-port",
            str(base + 2),
            "--metrics-export-port",
            str(base + 3),
            "--runtime-env-agent-port",
            str(base + 4),
            "--node-manager-port",
            str(base + 5),
            "--object-manager-port",
            str(base + 6),
            *extra,
        ]

    def start_head(self) -> Node:
        """The head: GCS on 127.0.0.1:6379, no CPUs, Ray's default temp dir (the namespace's private /tmp/ray,
        so ``ray.init()`` finds its address file as it would on a machine where someone ran ``ray start``).

        Raises:
            RuntimeError: ``ray start`` failed twice (the log is in the message).
        """
        log = self.root / "head.log"

        def start() -> subprocess.Popen[bytes]:
            extra = ["--head", "--port", str(HEAD_PORT), "--include-dashboard", "false"]
            return self._spawn([*self.enter(), *self._start_args(0, extra)], log)

        def clean() -> None:  # what a failed head left: every process in the namespace but the holder
            self._kill_all(keep_holder=True)
            failed = self.root / f"failed-{self._attempts}"  # its logs, for the error
            failed.mkdir()
            for entry in (self.root / "ray").iterdir():
                shutil.move(entry, failed / entry.name)

        self._with_retry(start, clean, log)
        node = Node("head", self.root / "ray", 0, None, log)
        self.nodes["head"] = node
        return node

    def add_worker(self, name: str, num_cpus: int = 1) -> Node:
        """A worker node joined to the head, in its own mount namespace where ``hidden`` is an empty tmpfs, with
        its own temp dir and a custom resource ``{name: 1}``.

        Raises:
            RuntimeError: ``ray start`` failed twice (the log is in the message).
        """
        return self.add_workers([name], num_cpus)[0]

    def add_workers(self, names: Sequence[str], num_cpus: int = 1) -> list[Node]:
        """Start worker nodes ``names`` (each as :meth:`add_worker`), one after the other: two raylets
        registering at once overran Ray's start-up waits on a busy 2-core machine. About 15 s each.

        Raises:
            RuntimeError: a ``ray start`` failed twice (its log is in the message).
        """
        started = []
        for name in names:
            if name in self.nodes or not name.isidentifier():
                raise ValueError(f"node name {name!r} is taken or not an identifier")
            temp = self.root / name
            ns_file = temp / "mount-ns"
            node = Node(name, temp, num_cpus, None, self.root / f"{name}.log")

            def start(node: Node = node, ns_file: Path = ns_file) -> subprocess.Popen[bytes]:
                node.temp_dir.mkdir()
                extra = ["--address", self.address, "--temp-dir", str(node.temp_dir)]
                args = self._start_args(node.num_cpus, [*extra, "--resources", json.dumps({node.name: 1})])
                hide = "".join(
                    f"mount -t tmpfs -o size=64m none {shlex.quote(str(p))} && " for p in self.hidden
                )
                script = f"{hide}readlink /proc/self/ns/mnt > {shlex.quote(str(ns_file))} && exec {shlex.join(args)}"
                argv = [*self.enter(), "unshare", "--mount", "--propagation", "private", "bash", "-c", script]
                return self._spawn(argv, node.log)

            def clean(node: Node = node, ns_file: Path = ns_file) -> None:
                if ns_file.is_file():
                    node.mount_ns = ns_file.read_text().strip()
                    self.kill_node_processes(node)
                node.temp_dir.rename(self.root / f"failed-{self._attempts}")  # its logs, for the error

            self._with_retry(start, clean, node.log)
            node.mount_ns = ns_file.read_text().strip()
            self.nodes[name] = node
            started.append(node)
        return started

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "a") as f:
            return subprocess.Popen(argv, env=self.env, stdout=f, stderr=subprocess.STDOUT)

    @staticmethod
    def _with_retry(start: Any, clean: Any, log: Path, attempts: int = 2) -> None:
        """Run ``start()`` (a ``ray start``) until it succeeds, ``clean()`` after each failure."""
        for attempt in range(1, attempts + 1):
            proc = start()
            try:
                rc = proc.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            if rc == 0:
                return
            clean()
            if attempt == attempts:
                raise RuntimeError(f"`ray start` failed (exit {rc}): {log.read_text()[-1500:]}")
            with open(log, "a") as f:
                f.write(f"\n--- attempt {attempt} failed (exit {rc}); starting again\n")

    def kill_node(self, name: str) -> int:
        """Kill every process of worker node ``name`` at once (SIGKILL), as if its machine died; returns how many
        processes were killed."""
        return self.kill_node_processes(self.nodes[name])

    @staticmethod
    def kill_node_processes(node: Node) -> int:
        pids = node.pids()
        for pid in pids:
            _kill(pid)
        _wait_gone(pids, 10)
        return len(pids)

    def node_sees(self, name: str, path: str | Path) -> bool:
        """Whether ``path`` exists in worker node ``name``'s view of the file system."""
        pids = self.nodes[name].pids()
        if not pids:
            raise RuntimeError(f"node {name!r} has no live process")
        proc = subprocess.run(
            ["nsenter", "-t", str(pids[0]), "--mount", "--", "test", "-e", str(path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return proc.returncode == 0

    def head_session_dir(self) -> Path:
        """The head's session folder (logs of the GCS and the head's raylet), seen from outside the namespace."""
        return max((self.root / "ray").glob("session_2*"), key=lambda p: p.stat().st_mtime)

    # ------------------------------------------------------------------ clean-up

    def pids(self) -> list[int]:
        """Every process in the cluster's network namespace (all started by this cluster or its drivers)."""
        if not self.net_ns:
            return []
        return [p for p in _pids() if _ns(p, "net") == self.net_ns]

    def _kill_all(self, *, keep_holder: bool) -> None:
        for _ in range(3):
            left = [p for p in self.pids() if not (keep_holder and p == self.holder)]
            if not left:
                break
            for pid in left:
                _kill(pid)
            _wait_gone(left, 10)

    def close(self) -> None:
        """Kill every process inside the namespaces and remove the cluster's folder."""
        if self.holder is not None:
            _kill(self.holder)  # the init of the process-ID namespace: the kernel kills the rest
        self._kill_all(keep_holder=False)
        if self._unshare.poll() is None:
            self._unshare.kill()
        self._unshare.wait(10)
        if os.environ.get("QTC_KEEP"):
            print(f"kept the cluster's folder {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _wait_gone(pids: Sequence[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        if not alive:
            return
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"

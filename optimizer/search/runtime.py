"""One Ray runtime per process, owned at process level: local by default, an existing cluster when ``RAY_ADDRESS``
names one.

Ray costs about 5 s and 0.8 GB to start (STACK.md), so it is started lazily, once, and reused by every sweep and
profile in the process. This is the only module that imports ray.

Who owns it: on Linux the head processes a local runtime starts (gcs_server, raylet) die with the *thread* that
called ``ray.init()`` (a parent-death signal), and about 60 s later the driver gives up on the GCS and terminates
the whole process. A Streamlit script run and a server's job thread are such short-lived threads. So every
``ray.init()`` and ``ray.shutdown()`` runs on one daemon thread, started once and alive as long as the process
(:class:`_Owner`); callers on any thread hand it the work and wait.

Which runtime (a decision stated in :func:`runtime_info`, never a crash):

* ``RAY_ADDRESS`` set: join that cluster, with its own resources (no ``num_cpus``: Ray refuses both); ``auto``
  joins the one whose address ``ray start`` left on this machine (never Ray's fallback scan of processes, which
  can find another user's private runtime). Nothing to join: an :class:`~optimizer.errors.InputError` that says
  so at once, never a hang or Ray's traceback.
* not set: start a private runtime (``address="local"``) even when ``ray start`` left a cluster (or its address
  file) on this machine; joining one silently would put trials on a cluster nobody named. The decision and how
  to join instead (``RAY_ADDRESS=auto``) are logged and reported; a stale address file is reported as such.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from optimizer.errors import InputError
from optimizer.types import Frozen

log = logging.getLogger(__name__)

T = TypeVar("T")

OBJECT_STORE_BYTES = 256 * 1024 * 1024
#: the ``optimizer`` package's folder, shipped with a joined cluster's jobs; found from this file, not from
#: ``optimizer.__file__``, which is None when a folder named ``optimizer`` early on sys.path (a script run from the
#: tests) makes the name a namespace package
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_HOST_PORT = re.compile(r"^(?P<host>[\w.-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


class RuntimeInfo(Frozen):
    """Which Ray runtime this process uses, and why."""

    mode: Literal["private", "joined"]
    address: str | None
    reason: str


class _Owner:
    """A daemon thread that runs every ``ray.init``/``ray.shutdown`` of the process, so the processes a local
    runtime starts are tied to a thread that never exits (see the module docstring)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="quanttaas-ray-owner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            fn, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as e:  # handed to the caller, who raises it on its own thread
                future.set_exception(e)

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future.result()


_lock = threading.Lock()
_owner: _Owner | None = None
_info: RuntimeInfo | None = None


def _get_owner() -> _Owner:
    global _owner
    if _owner is None:
        _owner = _Owner()
    return _owner


def ray_module() -> Any:
    import ray

    return ray


def _worker_env() -> dict[str, str]:
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OMP_NUM_THREADS": "1",
    }
    for key in ("QUANTTAAS_HOME", "QUANTTAAS_THREADS"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _existing_local_cluster() -> str | None:
    """The address a ``ray start`` on this machine left behind, if any (Ray's own look-up; never raises)."""
    try:
        from ray._private.services import find_bootstrap_address

        return find_bootstrap_address(None)  # type: ignore[no-any-return]
    except Exception:
        return None


def _loopback_only(ray: Any) -> None:
    """Keep a private runtime on the loopback interface. Ray otherwise advertises (and its GCS listens on) the
    machine's outward address even with ``_node_ip_address="127.0.0.1"``: a private runtime has no business on
    the network. Ray's own switch for single-machine runtimes does it, read at call time (and by children)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except Exception:  # a Ray without the switch: still a private runtime, only not loopback-bound
        log.debug("could not pin the private Ray runtime to loopback", exc_info=True)


def _answers(address: str, timeout_s: float = 3.0) -> bool | None:
    """Whether something accepts connections at ``host:port`` (None: not a host:port address, e.g. ray://)."""
    match = _HOST_PORT.match(address)
    if not match:
        return None
    try:
        with socket.create_connection((match["host"].strip("[]"), int(match["port"])), timeout=timeout_s):
            return True
    except OSError:
        return False


def _join_target(address: str) -> str:
    """The address to join for ``RAY_ADDRESS``, checked first so a wrong one is refused in seconds.

    ``auto`` means the cluster whose address ``ray start`` left on this machine, and only that: Ray's own
    fallback scans the machine's processes and can join another user's private runtime.

    Raises:
        InputError: ``auto`` with no address left by ``ray start``, or nothing answers at the address.
    """
    hint = (
        "start the cluster (`ray start --head` on its head node) or point RAY_ADDRESS at its head "
        "(host:6379); unset RAY_ADDRESS to run the trials on a private runtime on this machine"
    )
    target = address
    if address == "auto":
        found = _existing_local_cluster()
        if not found:
            raise InputError(
                "RAY_ADDRESS=auto names no Ray cluster: no `ray start` on this machine left its address",
                hint=hint,
            )
        target = found
    if _answers(target) is False:
        named = f"RAY_ADDRESS={address}" + (
            f" (the address `ray start` left, {target})" if target != address else ""
        )
        raise InputError(f"{named} names no Ray cluster: nothing answers there", hint=hint)
    return target


def _join(ray: Any, address: str, env_vars: dict[str, str]) -> RuntimeInfo:
    """Join the cluster ``RAY_ADDRESS`` names (``auto``: the one ``ray start`` left on this machine).

    Raises:
        InputError: there is no cluster to join there (a decision stated, never Ray's traceback).
    """
    target = _join_target(address)
    try:
        # workers on other machines may not have the project installed: ship the package with the job
        ray.init(
            address=target,
            runtime_env={"env_vars": env_vars, "py_modules": [_PACKAGE_DIR]},
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
        raise InputError(
            f"RAY_ADDRESS={address} names no Ray cluster this process can join "
            f"({e.__class__.__name__}: {str(e)[:200]})",
            hint="check the address and that the cluster runs the same Ray and Python versions; unset "
            "RAY_ADDRESS to run the trials on a private runtime on this machine",
        ) from e
    try:
        gcs = str(ray.get_runtime_context().gcs_address)
    except Exception:  # an older Ray without the property: the address as given still says where
        gcs = target
    named = f"RAY_ADDRESS={address}" if gcs != address else "RAY_ADDRESS"
    return RuntimeInfo(mode="joined", address=gcs, reason=f"joined the Ray cluster at {gcs} ({named})")


def _left_alone(existing: str) -> str:
    """What a private runtime says about the cluster address ``ray start`` left on this machine."""
    if _answers(existing, timeout_s=1.0) is False:
        return f"; `ray start` left the address of a cluster at {existing} behind, and nothing answers there"
    return (
        f"; a cluster started with `ray start` is running at {existing} and was left alone: "
        "set RAY_ADDRESS=auto (or its address) to run trials there"
    )


def _start(num_cpus: int | None) -> RuntimeInfo:
    ray = ray_module()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray warns at every start that token auth is on; it is on on purpose (STACK.md), so keep the log quiet
    logging.getLogger("ray").setLevel(logging.ERROR)
    env_vars = _worker_env()
    address = os.environ.get("RAY_ADDRESS")
    if address:
        return _join(ray, address, env_vars)
    existing = _existing_local_cluster()
    _loopback_only(ray)
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        runtime_env={"env_vars": env_vars},
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        configure_logging=True,
        logging_level=logging.WARNING,
    )
    reason = "started a private Ray runtime on this machine (RAY_ADDRESS is not set)"
    if existing:
        reason += _left_alone(existing)
        log.warning("%s", reason)
    return RuntimeInfo(mode="private", address=None, reason=reason)


def ensure_ray(num_cpus: int | None = None) -> Any:
    """Start (or join) Ray once, on the process's owner thread, and return the ``ray`` module.

    Safe from any thread; the runtime outlives the calling thread. See the module docstring for which runtime.

    Raises:
        InputError: ``RAY_ADDRESS`` names no cluster that can be joined.
    """
    global _info
    ray = ray_module()
    with _lock:
        if not ray.is_initialized():
            _info = _get_owner().call(lambda: _start(num_cpus))
        return ray


def runtime_info() -> RuntimeInfo | None:
    """The decision :func:`ensure_ray` made (None before Ray was started in this process)."""
    return _info


def cluster_gpus() -> float:
    """GPUs the (started) Ray cluster offers; 0 on CPU-only machines."""
    ray = ensure_ray()
    return float(ray.cluster_resources().get("GPU", 0.0))


def shutdown_ray() -> None:
    """Stop the runtime this process started (tests and CLI exit); a joined cluster is only disconnected."""
    global _info
    ray = ray_module()
    with _lock:
        if ray.is_initialized():
            _get_owner().call(ray.shutdown)
        _info = None

"""One Ray runtime per process: local by default, an existing cluster when ``RAY_ADDRESS`` names one.

Ray costs about 5 s and 0.8 GB to start (STACK.md), so it is started lazily, once, and reused by every sweep and
profile in the process. This is the only module that imports ray.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_started_here = False


def ray_module() -> Any:
    import ray

    return ray


def ensure_ray(num_cpus: int | None = None) -> Any:
    """Start (or join) Ray once and return the ``ray`` module.

    With ``RAY_ADDRESS`` set, joins that cluster (its GPUs become available to trials); otherwise starts a local
    runtime bound to 127.0.0.1 with a capped object store and no dashboard.
    """
    global _started_here
    ray = ray_module()
    with _lock:
        if ray.is_initialized():
            return ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        env_vars = {
            "RAY_USAGE_STATS_ENABLED": "0",
            "HF_HUB_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OMP_NUM_THREADS": "1",
        }
        for key in ("QUANTTAAS_HOME", "QUANTTAAS_THREADS"):
            if key in os.environ:
                env_vars[key] = os.environ[key]
        # Ray warns at every start that token auth is on; it is on on purpose (STACK.md), so keep the log quiet
        logging.getLogger("ray").setLevel(logging.ERROR)
        address = os.environ.get("RAY_ADDRESS")
        if address:
            import optimizer

            # workers on other machines may not have the project installed: ship the package with the job
            ray.init(
                address=address,
                runtime_env={"env_vars": env_vars, "py_modules": [os.path.dirname(optimizer.__file__)]},
                log_to_driver=False,
            )
        else:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=256 * 1024 * 1024,
                runtime_env={"env_vars": env_vars},
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
                configure_logging=True,
                logging_level=logging.WARNING,
            )
            _started_here = True
        return ray


def cluster_gpus() -> float:
    """GPUs the (started) Ray cluster offers; 0 on CPU-only machines."""
    ray = ensure_ray()
    return float(ray.cluster_resources().get("GPU", 0.0))


def shutdown_ray() -> None:
    """Stop the runtime this process started (tests and CLI exit); a joined cluster is only disconnected."""
    global _started_here
    ray = ray_module()
    with _lock:
        if ray.is_initialized():
            ray.shutdown()
        _started_here = False

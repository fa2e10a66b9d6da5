"""Peak memory of one model, measured in a fresh process so that the order of measurements cannot change it.

Measured in the process that evaluates many models, the first one carries onnxruntime's start-up (its
environment, thread pools, kernel registry) and later ones reuse memory the allocator already holds: evaluating
A then B gave A 0.9 MB and B 29 MB, and swapping them swapped the numbers. Here every model gets a process of its
own: a small server process (one per measuring process, started at first use) imports numpy and onnxruntime and
then only forks, one child per model, so no session ever existed in a child's memory before its own. The child
starts onnxruntime on a one-node model, resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), creates
the session, runs the batch, and reads the peak back (``VmHWM``). Where the counter cannot be reset (not Linux), a
thread samples the resident size every millisecond instead; where there is no ``fork`` (Windows), each model gets
a fresh interpreter.

The number is the resident memory the model adds to a started onnxruntime: its session (weights, optimized graph,
arena) and running one batch at the measured thread count. It does not include Python or onnxruntime themselves.
A fork costs milliseconds; the server's start, once per process, costs about an onnxruntime import.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from optimizer.errors import EvaluationError

__all__ = ["MEMORY_METHOD", "peak_memory_in_fresh_process"]

MEMORY_METHOD = (
    "peak resident memory added by creating the session and running the measured batch, each model in a fresh "
    "process after onnxruntime's own start-up (Linux VmHWM after clear_refs; sampled elsewhere)"
)
_TIMEOUT_S = 600.0
# the server forks: nothing in it may have started threads (BLAS pools) before it does
_SERVER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _server_env() -> dict[str, str]:
    """This process's environment for the probe, with this package importable wherever the probe starts."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **_SERVER_ENV, "PYTHONPATH": path}


class _Server:
    """The forking probe server: one request (a JSON line) in, one answer (a JSON line) out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "optimizer.measure.memory", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_server_env(),
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        if stdin is None or stdout is None:  # never: both are pipes
            raise EvaluationError("the memory probe server has no pipes")
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        ready, _, _ = select.select([stdout], [], [], timeout_s)
        if not ready:
            self.proc.kill()
            raise EvaluationError(
                f"measuring the peak memory of {Path(request['model']).name} took over {timeout_s:.0f} s",
                hint="the model is too large for this machine's memory, or it hangs in onnxruntime",
            )
        line = stdout.readline()
        if not line:
            raise EvaluationError("the memory probe server ended", hint="measure again; it restarts")
        answer: dict[str, Any] = json.loads(line)
        return answer


_lock = threading.Lock()
_server: _Server | None = None


def _ask(request: dict[str, Any]) -> dict[str, Any]:
    global _server
    if not hasattr(os, "fork"):  # no fork here: a fresh interpreter per model
        done = subprocess.run(
            [sys.executable, "-m", "optimizer.measure.memory", "--once", json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            env=_server_env(),
        )
        lines = done.stdout.strip().splitlines()
        answer: dict[str, Any] = (
            json.loads(lines[-1])
            if lines
            else {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        )
        return answer
    with _lock:
        if _server is None or not _server.alive():
            _server = _Server()
        return _server.ask(request, _TIMEOUT_S)


def peak_memory_in_fresh_process(
    model_path: str | Path,
    feed: Mapping[str, np.ndarray],
    *,
    threads: int = 1,
    provider: str | None = None,
    runs: int = 3,
) -> int:
    """Bytes of resident memory ``model_path`` adds when a session is created and ``feed`` is run ``runs`` times,
    measured in a process of its own (see the module docstring).

    Raises:
        EvaluationError: the probe could not load or run the model (its error is quoted), or took too long.
    """
    with tempfile.TemporaryDirectory(prefix="quanttaas-mem-") as tmp:
        feed_path = Path(tmp) / "feed.npz"
        arrays: dict[str, Any] = {f"i{k}": np.ascontiguousarray(v) for k, v in enumerate(feed.values())}
        np.savez(feed_path, **arrays)
        request = {
            "model": str(Path(model_path).resolve()),
            "feed": str(feed_path),
            "names": list(feed),
            "threads": threads,
            "provider": provider,
            "runs": runs,
        }
        answer = _ask(request)
    if "error" in answer:
        raise EvaluationError(
            f"measuring the peak memory of {Path(model_path).name} failed: {str(answer['error'])[:300]}",
            hint="the model does not run in a fresh onnxruntime process (or the process was killed for memory)",
        )
    return int(answer["peak_added_bytes"])


# --------------------------------------------------------------------------- the probe (in the child)

#: a one-node float model (Relu on [1, 4]), serialized: starting onnxruntime on it needs no onnx import
_START_MODEL = base64.b64decode(
    "CAcSADo7CgwKAXgSAXkiBFJlbHUSAXNaEwoBeBIOCgwIARIICgIIAQoCCARiEwoBeRIOCgwIARIICgIIAQoCCARCBAoAEA0="
)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


class _Sampler:
    """The resident size sampled in a thread (the fallback where VmHWM cannot be reset)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.001)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _session(ort: Any, model: str, threads: int, provider: str | None) -> Any:
    """The session :func:`optimizer.measure.evaluate.make_session` makes (same options), built here so the probe
    imports only numpy and onnxruntime."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if provider == "CUDAExecutionProvider" and provider in ort.get_available_providers():
        providers = [provider, *providers]
    return ort.InferenceSession(model, sess_options=opts, providers=providers)


def _measure(request: dict[str, Any]) -> dict[str, Any]:
    """One model's peak memory, in the process it runs in (a fresh child)."""
    import gc

    import onnxruntime as ort

    with np.load(request["feed"]) as z:
        feed = {n: z[f"i{k}"] for k, n in enumerate(request["names"])}
    threads, provider, runs = int(request["threads"]), request.get("provider"), int(request["runs"])
    # onnxruntime's process-wide start-up (environment, logging, thread pools) is paid before measuring
    ort.InferenceSession(_START_MODEL, providers=["CPUExecutionProvider"]).run(
        None, {"x": np.zeros((1, 4), np.float32)}
    )
    gc.collect()
    before = _status_kb("VmRSS") if _reset_peak() else None
    if before is not None:
        sess = _session(ort, request["model"], threads, provider)
        for _ in range(max(1, runs)):
            sess.run(None, feed)
        return {"peak_added_bytes": max(0, (_status_kb("VmHWM") or before) - before) * 1024, "exact": True}
    with _Sampler() as s:
        sess = _session(ort, request["model"], threads, provider)
        for _ in range(max(1, runs)):
            sess.run(None, feed)
    return {"peak_added_bytes": max(0, s.peak - s.start), "exact": False}


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        return _measure(request)
    except Exception as e:
        return {"error": f"{e.__class__.__name__}: {e}"}


def _serve(stdin: IO[str], stdout: IO[str]) -> None:
    """The server loop: for each request line, fork a child that measures and answers through a pipe."""
    import onnxruntime  # noqa: F401  (imported once here, so every fork starts with it loaded)

    for line in stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: measure, answer, and leave without running the parent's clean-up
            os.close(r)
            try:
                os.write(w, json.dumps(_answer(request)).encode())
            finally:
                os._exit(0)
        os.close(w)
        chunks = []
        with os.fdopen(r, "rb") as pipe:
            while chunk := pipe.read(65536):
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        text = b"".join(chunks).decode() or json.dumps(
            {"error": f"the probe process died (wait status {status}; killed for memory?)"}
        )
        stdout.write(text + "\n")
        stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.stdin, sys.stdout)
    elif sys.argv[1:2] == ["--once"]:
        print(json.dumps(_answer(json.loads(sys.argv[2]))))

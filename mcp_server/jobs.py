"""Jobs that last: SQLite-backed job records, trials written as they finish, and background threads.

Tables (stdlib ``sqlite3``, WAL journal, one connection guarded by a lock; every change is one transaction)::

    jobs(id, kind, state, args, progress, error, result, owner, cancel_requested, created, updated)
    trials(job_id, candidate_id, candidate, created)      one row per finished trial, written as it arrives

States: ``queued -> running -> succeeded | failed | cancelled``; a job whose server died (or stopped) while it was
queued or running becomes ``interrupted``. ``interrupted``, ``cancelled`` and ``failed`` jobs can be resumed: they go
back to ``queued`` and their runner receives the trials stored so far.

Ownership: each :class:`JobManager` stamps the jobs it runs with an owner ``host:pid:token``. At start-up a manager
marks as interrupted only the queued/running jobs whose owner is gone (a dead process on this host, or a manager of
this process that was shut down), so two servers sharing one home never interrupt each other's live jobs.
Cancelling works across processes too: the request is stored, and the owner's runner sees it at the next trial.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from mcp_server.errors import JobStateError, StorageError, environment_error, internal_error
from optimizer.errors import JobError, NotFoundError, QuantTaaSError
from optimizer.types import Candidate

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE: frozenset[str] = frozenset({"queued", "running"})
RESUMABLE: frozenset[str] = frozenset({"interrupted", "cancelled", "failed"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    args TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    result TEXT,
    owner TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE TABLE IF NOT EXISTS trials (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    candidate_id TEXT NOT NULL,
    candidate TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (job_id, candidate_id)
);
"""

# managers alive in this process, by owner token (see the module docstring)
_LIVE_OWNERS: set[str] = set()
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class JobRecord:
    """One row of ``jobs``, decoded."""

    id: str
    kind: str
    state: JobState
    args: dict[str, Any]
    progress: dict[str, Any]
    error: dict[str, Any] | None
    result: str | None
    owner: str
    cancel_requested: bool
    created: float
    updated: float


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


StoreMode = Literal["ok", "read_only", "damaged", "unavailable"]
_SEVERITY: tuple[StoreMode, ...] = ("ok", "read_only", "damaged", "unavailable")


class JobStore:
    """Job rows and their trials in one SQLite file. Thread-safe; every write is one transaction.

    Opening never raises: the file is checked first (``PRAGMA quick_check``) and the store runs in one of four
    modes, with :attr:`problem` saying what is wrong, where, and what to do:

    - ``ok``: reads and writes;
    - ``read_only``: the file or its folder cannot be written (a read-only home): reads work, writes raise;
    - ``damaged``: the integrity check failed: what can be read is served, nothing more is written into it;
    - ``unavailable``: no database can be opened there (not a database, a folder in its place, no access):
      every call raises.

    Every failure is a :class:`~mcp_server.errors.StorageError` (HTTP 503), never an internal error.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self.mode: StoreMode = "ok"
        #: what was found wrong at start, worst last (empty when the store is healthy)
        self.problems: list[StorageError] = []
        try:
            self._open()
        except (sqlite3.Error, OSError) as e:  # OSError: the folder itself cannot be reached
            self._close_quietly()
            self._set_problem("unavailable", *self._diagnose(e))
        if self._conn is not None:
            self._check_integrity()

    # ------------------------------------------------------------------ opening and diagnosis

    def _open(self) -> None:
        path = self.path
        with suppress(OSError):  # judged below, with the file
            path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not path.is_file():
            kind = "folder" if path.is_dir() else "special file"
            self._set_problem(
                "unavailable",
                f"the job database {path} is a {kind}, not a database file",
                f"Stop the server and move it aside (mv {path} {path}.aside); a new empty database is created "
                "at the next start.",
            )
            return
        if self._writable():
            conn = self._connect(f"file:{quote(str(path))}")
            self._conn = conn
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.executescript(_SCHEMA)
            return
        if not path.is_file():
            self._set_problem(
                "unavailable",
                f"the job database {path} does not exist and its folder is not writable",
                f"Give the server's user write access to {path.parent} (or mount the home read-write).",
            )
            return
        # read-only: WAL needs its -shm file, which a read-only folder cannot hold; immutable reads the file as is
        uri = f"file:{quote(str(path))}?mode=ro"
        try:
            self._conn = self._connect(uri)
            self._conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            self._close_quietly()
            self._conn = self._connect(uri + "&immutable=1")
        self._set_problem(
            "read_only",
            f"the job database {path} (or its folder) is read-only: jobs can be read, no new job can start",
            f"Give the server's user write access to {path.parent} (chown/chmod, or mount it read-write) and "
            "restart the server.",
        )

    def _connect(self, uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        return conn

    def _writable(self) -> bool:
        files = [self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))]
        return os.access(self.path.parent, os.W_OK) and all(
            os.access(f, os.W_OK) for f in files if f.exists()
        )

    def _diagnose(self, e: sqlite3.Error | OSError) -> tuple[str, str]:
        path, text = self.path, str(e)
        if isinstance(e, OSError):
            return (
                f"the job database {path} cannot be reached ({e.strerror or text})",
                f"Give the server's user access to {path.parent} (chown/chmod), then restart the server.",
            )
        aside = (
            f"Stop the server, then restore {path} from a backup, or move it aside (mv {path} {path}.damaged; "
            "a new empty database is created at the next start)."
        )
        if "not a database" in text or "malformed" in text:
            return f"the job database {path} is damaged ({text})", aside
        if "unable to open" in text or "readonly" in text:
            return (
                f"the job database {path} cannot be opened ({text})",
                f"Check that the server's user can read and write {path.parent}. If it can, the file is damaged: "
                + aside,
            )
        return f"the job database {path} failed to open ({text})", aside

    def _check_integrity(self) -> None:
        if self._conn is None:
            return
        try:
            rows = self._conn.execute("PRAGMA quick_check(5)").fetchall()
            found = [str(r[0]) for r in rows]
        except sqlite3.DatabaseError as e:
            found = [str(e)]
        if found == ["ok"]:
            return
        message, hint = self._diagnose(sqlite3.DatabaseError("malformed: " + "; ".join(found)[:300]))
        self._set_problem(
            "damaged",
            message + ": the jobs that can still be read are served; no new job is written into it",
            "sqlite3 " + str(self.path) + " .recover > salvage.sql keeps what is readable. " + hint,
        )

    def _set_problem(self, mode: StoreMode, message: str, hint: str) -> None:
        if _SEVERITY.index(mode) >= _SEVERITY.index(self.mode):
            self.mode = mode
        self.problems.append(StorageError(message, hint=hint, details={"path": str(self.path), "mode": mode}))
        self.problems.sort(key=lambda p: _SEVERITY.index(p.details["mode"]))
        log.error("job storage: %s (%s)", message, hint)

    @property
    def problem(self) -> StorageError | None:
        """The most serious problem found at start, or None."""
        return self.problems[-1] if self.problems else None

    def _close_quietly(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    @property
    def writable(self) -> bool:
        return self.mode == "ok"

    # ------------------------------------------------------------------ access

    def _refuse(self, action: str) -> StorageError:
        p = self.problem
        message = f"cannot {action}: {p.message}" if p else f"cannot {action}"
        return StorageError(message, hint=p.hint if p else None, details=p.details if p else None)

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._conn is None:
                raise self._refuse("read the jobs")
            try:
                return list(self._conn.execute(query, tuple(params)).fetchall())
            except sqlite3.DatabaseError as e:
                raise StorageError(
                    f"reading the job database {self.path} failed: {e}",
                    hint=self.problem.hint if self.problem else self._diagnose(e)[1],
                    details={"path": str(self.path), "mode": self.mode},
                ) from e

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None or not self.writable:
                raise self._refuse("write to the job database")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:
                raise self._write_failed(e) from e
            try:
                yield conn
            except BaseException as e:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.DatabaseError):
                    raise self._write_failed(e) from e
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as e:
                raise self._write_failed(e) from e

    def _write_failed(self, e: sqlite3.DatabaseError) -> StorageError:
        message, hint = self._diagnose(e)
        if "readonly" in str(e) or "read-only" in str(e):
            hint = f"Give the server's user write access to {self.path.parent}, then retry."
        elif "disk" in str(e) and "full" in str(e):
            hint = f"Free disk space on the drive that holds {self.path.parent}, then retry."
        return StorageError(
            f"writing to the job database failed: {message}", hint=hint, details={"path": str(self.path)}
        )

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    @staticmethod
    def _decode(row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            id=row["id"],
            kind=row["kind"],
            state=row["state"],
            args=json.loads(row["args"]),
            progress=json.loads(row["progress"] or "{}"),
            error=json.loads(row["error"]) if row["error"] else None,
            result=row["result"],
            owner=row["owner"],
            cancel_requested=bool(row["cancel_requested"]),
            created=row["created"],
            updated=row["updated"],
        )

    def create(self, kind: str, args: dict[str, Any], owner: str) -> JobRecord:
        now = time.time()
        job_id = new_job_id()
        with self._tx() as c:
            c.execute(
                "INSERT INTO jobs (id, kind, state, args, progress, owner, created, updated) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                (job_id, kind, json.dumps(args), json.dumps({"phase": "queued"}), owner, now, now),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        """Raises NotFoundError for an unknown id."""
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"no job {job_id[:100]!r}", hint="list_jobs shows the jobs this server knows")
        return self._decode(row)

    def recent(self, *, limit: int = 50, states: Sequence[str] | None = None) -> list[JobRecord]:
        """Newest first."""
        query, params = "SELECT * FROM jobs", []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            params += list(states)
        query += " ORDER BY created DESC, id LIMIT ?"
        return [self._decode(r) for r in self._read(query, (*params, limit))]

    def transition(
        self,
        job_id: str,
        from_states: Sequence[str],
        to_state: JobState,
        *,
        owner: str | None = None,
        error: dict[str, Any] | None = None,
        result: str | None = None,
        progress: dict[str, Any] | None = None,
        reset: bool = False,
    ) -> bool:
        """Move a job to ``to_state`` if it is in one of ``from_states`` (atomic); True when it moved.

        ``reset`` clears the error, the result and the cancel request (a resumed job starts clean).
        """
        sets = ["state = ?", "updated = ?"]
        params: list[Any] = [to_state, time.time()]
        if owner is not None:
            sets.append("owner = ?")
            params.append(owner)
        if error is not None or reset:
            sets.append("error = ?")
            params.append(json.dumps(error) if error is not None else None)
        if result is not None or reset:
            sets.append("result = ?")
            params.append(result)
        if progress is not None:
            sets.append("progress = ?")
            params.append(json.dumps(progress))
        if reset:
            sets.append("cancel_requested = 0")
        marks = ",".join("?" * len(from_states))
        with self._tx() as c:
            cur = c.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state IN ({marks})",
                (*params, job_id, *from_states),
            )
            return cur.rowcount == 1

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET progress = ?, updated = ? WHERE id = ?",
                (json.dumps(progress), time.time(), job_id),
            )

    def add_trial(self, job_id: str, candidate: Candidate, progress: dict[str, Any]) -> None:
        """Store one finished trial and the progress that counts it, in one transaction."""
        now = time.time()
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO trials (job_id, candidate_id, candidate, created) VALUES (?, ?, ?, ?)",
                (job_id, candidate.id, candidate.model_dump_json(), now),
            )
            c.execute(
                "UPDATE jobs SET progress = ?, updated = ? WHERE id = ?", (json.dumps(progress), now, job_id)
            )

    def trials(self, job_id: str) -> list[Candidate]:
        """The job's finished trials, in the order they finished."""
        rows = self._read(
            "SELECT candidate FROM trials WHERE job_id = ? ORDER BY created, candidate_id", (job_id,)
        )
        return [Candidate.model_validate_json(r["candidate"]) for r in rows]

    def count_trials(self, job_id: str) -> int:
        row = self._read("SELECT COUNT(*) AS n FROM trials WHERE job_id = ?", (job_id,))[0]
        return int(row["n"])

    def request_cancel(self, job_id: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ?", (time.time(), job_id))

    def cancel_requested(self, job_id: str) -> bool:
        rows = self._read("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        return bool(rows and rows[0]["cancel_requested"])

    def interrupt_orphans(self, alive: Callable[[str], bool]) -> list[str]:
        """Mark queued/running jobs whose owner is not alive as interrupted; returns their ids."""
        rows = self._read("SELECT id, owner FROM jobs WHERE state IN ('queued', 'running')")
        orphans = [r["id"] for r in rows if not alive(r["owner"])]
        for job_id in orphans:
            self.transition(
                job_id,
                ("queued", "running"),
                "interrupted",
                error=JobInterrupted().to_dict(),
            )
        return orphans


class JobInterrupted(JobError):
    """The server stopped (or died) while the job was queued or running."""

    code = "job_interrupted"
    default_hint = "Resume it with run_sweep(resume_job_id=...): finished trials are kept and not run again."

    def __init__(self) -> None:
        super().__init__("the server stopped while this job was queued or running")


def _owner_alive(owner: str) -> bool:
    """Whether the manager that owns a job may still be running it (see the module docstring)."""
    try:
        host, pid_text, _token = owner.split(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another machine: we cannot tell, so we leave its jobs alone
    if pid == os.getpid():
        with _LIVE_LOCK:
            return owner in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class JobContext:
    """What a job's runner gets: its id, arguments, working folder, cancel flag and ways to report."""

    job_id: str
    args: dict[str, Any]
    work_dir: Path
    cancel: threading.Event
    store: JobStore
    notify: Callable[[str, str, dict[str, Any]], None]

    def set_progress(self, progress: dict[str, Any]) -> None:
        self.store.set_progress(self.job_id, progress)
        self._check_cancel()
        self.notify(self.job_id, "progress", progress)

    def add_trial(self, candidate: Candidate, progress: dict[str, Any]) -> None:
        self.store.add_trial(self.job_id, candidate, progress)
        self._check_cancel()
        self.notify(self.job_id, "trial", {**progress, "candidate_id": candidate.id})

    def stored_trials(self) -> list[Candidate]:
        return self.store.trials(self.job_id)

    def _check_cancel(self) -> None:
        # a cancel requested from another process reaches the runner at its next report
        if not self.cancel.is_set() and self.store.cancel_requested(self.job_id):
            self.cancel.set()


Runner = Callable[[JobContext], str | None]
Listener = Callable[[str, str, dict[str, Any]], None]


@dataclass
class _Handle:
    cancel: threading.Event
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)


class JobManager:
    """Runs jobs in background threads (at most ``max_concurrent`` at once; the rest wait queued)."""

    def __init__(self, store: JobStore, work_dir: Path, *, max_concurrent: int = 2):
        self.store = store
        self.work_dir = work_dir
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        with _LIVE_LOCK:
            _LIVE_OWNERS.add(self.owner)
        # a store that cannot be written keeps its rows as they are (they are marked at the next healthy start)
        self.recovered = store.interrupt_orphans(_owner_alive) if store.writable else []
        if self.recovered:
            log.warning(
                "marked %d job(s) left behind by a stopped server as interrupted", len(self.recovered)
            )
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._handles: dict[str, _Handle] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._closing = False

    # ------------------------------------------------------------------ observers

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(job_id, event, payload)`` after every stored change (``progress``, ``trial``, ``state``)."""
        self._listeners.append(listener)

    def _notify(self, job_id: str, event: str, payload: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(job_id, event, payload)
            except Exception:  # an observer must never break a job
                log.exception("job listener failed")

    # ------------------------------------------------------------------ life cycle

    def submit(self, kind: str, args: dict[str, Any], runner: Runner) -> JobRecord:
        """Store a new job (queued) and start it in the background; returns at once."""
        if self._closing:
            raise JobStateError(
                "the server is shutting down and takes no new jobs", hint="retry after it restarts"
            )
        record = self.store.create(kind, args, self.owner)
        self._start(record.id, runner)
        return record

    def resume(self, job_id: str, runner: Runner) -> JobRecord:
        """Queue an interrupted, cancelled or failed job again; its stored trials go to the runner.

        Raises:
            NotFoundError: unknown job. JobStateError: the job is queued, running or succeeded.
        """
        record = self.store.get(job_id)
        if record.state not in RESUMABLE:
            raise JobStateError(
                f"job {job_id} is {record.state}; only interrupted, cancelled or failed jobs can be resumed",
                hint="get_job shows its state; a succeeded job's report is in get_pareto_report",
            )
        if not self.store.transition(
            job_id, tuple(RESUMABLE), "queued", owner=self.owner, reset=True, progress={"phase": "queued"}
        ):
            raise JobStateError(f"job {job_id} changed state while resuming it; call get_job and try again")
        self._start(job_id, runner)
        return self.store.get(job_id)

    def _start(self, job_id: str, runner: Runner) -> None:
        handle = _Handle(cancel=threading.Event())
        thread = threading.Thread(
            target=self._run, args=(job_id, runner, handle), name=f"job-{job_id}", daemon=True
        )
        handle.thread = thread
        with self._lock:
            self._handles[job_id] = handle
        thread.start()

    def _run(self, job_id: str, runner: Runner, handle: _Handle) -> None:
        try:
            with self._slots:
                if self._closing or not self.store.transition(
                    job_id, ("queued",), "running", owner=self.owner
                ):
                    return  # cancelled while it waited, or the server is stopping
                self._notify(job_id, "state", {"state": "running"})
                record = self.store.get(job_id)
                work_dir = self.work_dir / job_id
                work_dir.mkdir(parents=True, exist_ok=True)
                ctx = JobContext(job_id, record.args, work_dir, handle.cancel, self.store, self._notify)
                self._execute(ctx, runner)
        except (
            Exception
        ):  # the bookkeeping itself failed (e.g. the database vanished): log, never crash the server
            log.exception("job %s could not be run", job_id)
        finally:
            with self._lock:
                self._handles.pop(job_id, None)
            handle.done.set()

    def _execute(self, ctx: JobContext, runner: Runner) -> None:
        job_id = ctx.job_id
        try:
            result = runner(ctx)
        except QuantTaaSError as e:
            final: JobState = "interrupted" if self._closing else "failed"
            error = JobInterrupted().to_dict() if self._closing else e.to_dict()
            self.store.transition(job_id, ("running",), final, error=error)
        except Exception as e:
            storage = environment_error(e)  # a full or read-only disk is the machine's problem, not a bug
            if storage is None:
                log.exception("job %s failed unexpectedly", job_id)
            else:
                log.error("job %s failed: %s", job_id, storage.message)
            final = "interrupted" if self._closing else "failed"
            error = JobInterrupted().to_dict() if self._closing else (storage or internal_error()).to_dict()
            self.store.transition(job_id, ("running",), final, error=error)
        else:
            if self._closing and ctx.cancel.is_set():
                final = "interrupted"
                self.store.transition(job_id, ("running",), final, error=JobInterrupted().to_dict())
            else:
                final = "cancelled" if ctx.cancel.is_set() else "succeeded"
                self.store.transition(job_id, ("running",), final, result=result)
        self._notify(job_id, "state", {"state": final})

    def cancel(self, job_id: str) -> JobRecord:
        """Stop a queued, running or interrupted job; a no-op for a cancelled one.

        Raises:
            NotFoundError: unknown job. JobStateError: the job already succeeded or failed.
        """
        record = self.store.get(job_id)
        if record.state in ("succeeded", "failed"):
            raise JobStateError(
                f"job {job_id} already {record.state}; there is nothing to cancel",
                hint="get_pareto_report shows a succeeded job's result",
            )
        with self._lock:
            handle = self._handles.get(job_id)
        if handle is not None:
            handle.cancel.set()
        if record.state in ("queued", "running"):
            self.store.request_cancel(job_id)  # seen by the runner even if it starts (or runs elsewhere)
        # a queued (or interrupted) job never ran here: it is cancelled at once
        if self.store.transition(job_id, ("queued", "interrupted"), "cancelled"):
            self._notify(job_id, "state", {"state": "cancelled"})
        return self.store.get(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job leaves queued/running (or ``timeout`` seconds pass); returns its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.store.get(job_id)
            if record.state not in ACTIVE:
                return record
            with self._lock:
                handle = self._handles.get(job_id)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return record
            if handle is not None:
                handle.done.wait(0.2 if left is None else min(0.2, left))
            else:
                time.sleep(0.05)

    def is_local(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._handles

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop taking jobs, stop the running ones at their next trial, and mark what is left interrupted."""
        self._closing = True
        with self._lock:
            handles = list(self._handles.items())
        for _, handle in handles:
            handle.cancel.set()
        deadline = time.monotonic() + timeout
        for _, handle in handles:
            handle.done.wait(max(0.0, deadline - time.monotonic()))
        for job_id, _ in handles:
            self.store.transition(
                job_id, ("queued", "running"), "interrupted", error=JobInterrupted().to_dict()
            )
        with _LIVE_LOCK:
            _LIVE_OWNERS.discard(self.owner)

"""Where a study lives: storage URLs, Optuna's ``RDBStorage`` with heartbeats, and the claim lock.

- Default: an SQLite file ``runs/<study>/study.db`` (embedded, one machine, several workers).
- ``postgresql://user:pass@host/db``: the same command on several machines shares one study.

Heartbeats: every running trial writes a heartbeat every ``interval`` seconds; a trial silent for
``grace_period`` seconds (its worker was killed) is marked failed by the next worker that looks, and
:func:`rlopt.study.retries.queue_retries` queues a copy of it (same parameters) to run again, up to
``max_retry`` times per ``rlopt study run`` command.

The claim lock (:func:`claim_lock`) serialises "fail stale trials, count what is left, take the next
trial" across workers. It is written here because Optuna's ``ask()`` is not atomic with the count that
decides whether to ask at all, and on SQLite its ``WAITING -> RUNNING`` claim is not either (pysqlite
starts the transaction only at the UPDATE): two workers could both take the last trial. SQLite gets an
``flock`` on a file next to the database, PostgreSQL a session advisory lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from sqlalchemy.exc import SQLAlchemyError

from rlopt.config.storage import redact, sqlite_path, url_scheme
from rlopt.errors import ConfigError, first_line

SQLITE_BUSY_TIMEOUT_S = 120
CONNECT_TIMEOUT_S = 10
INIT_ATTEMPTS = 5


def check_reachable(url: str, will_create: Path | None = None) -> None:
    """Fail early, writing nothing, if the storage cannot be used.

    Args:
        url: the storage URL.
        will_create: a folder the caller is about to create (the study folder holding a default
            SQLite file), which therefore need not exist yet.

    Raises:
        ConfigError: one line saying why (folder missing, server unreachable, bad credentials...).
    """
    path = sqlite_path(url)
    if path is not None:
        check_sqlite_file(url, path, will_create)
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ConfigError(f"{redact(url)!r} is unreachable: {first_line(exc)} "
                          "(accepted: the URL of a running server that accepts this user)") from exc
    finally:
        engine.dispose()


SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(url: str, path: Path, will_create: Path | None = None) -> None:
    """An SQLite study file must be a database (or not exist yet) in a folder this process can write.

    Raises:
        ConfigError: one line naming the file or folder and what is accepted.
    """
    import os

    folder = path.resolve().parent
    if will_create is not None and folder == will_create.resolve():
        anchor = next((p for p in [folder, *folder.parents] if p.exists()), None)
        if anchor is not None and (not anchor.is_dir() or not os.access(anchor, os.W_OK | os.X_OK)):
            raise ConfigError(f"{url!r}: cannot create {folder} under {anchor} (not a writable folder; "
                              "accepted: --runs-dir in a writable folder)")
        if anchor != folder:
            return
    if not folder.is_dir():
        raise ConfigError(f"{url!r}: folder {folder} does not exist "
                          "(accepted: an SQLite file in an existing folder)")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{url!r}: {path} is not a file (accepted: an SQLite database file)")
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise ConfigError(f"{url!r}: {path} is not an SQLite database (accepted: a study.db "
                                  "written by rlopt, or a path where none exists yet)")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{url!r}: {path if path.exists() else folder} cannot be written (read-only?) "
                          "(accepted: an SQLite file in a writable folder)")


def open_storage(url: str, interval: int, grace_period: int) -> RDBStorage:
    """Optuna's ``RDBStorage`` at ``url``, with heartbeats (stale trials are retried by rlopt's workers)."""
    engine_kwargs: dict[str, Any] = {}
    if url_scheme(url) == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(INIT_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=interval,
                    grace_period=grace_period,
                )
        except (optuna.exceptions.StorageInternalError, SQLAlchemyError):
            # Two processes creating Optuna's tables in a new database at once: one of them loses the
            # race on the schema version row; the tables exist by the next attempt.
            if attempt == INIT_ATTEMPTS - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def existing_study_names(url: str) -> list[str]:
    """Names of the Optuna studies in the storage, without creating anything."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return []
    try:
        storage = RDBStorage(url, skip_table_creation=True, skip_compatibility_check=True)
    except optuna.exceptions.StorageInternalError:
        return []  # a database without Optuna's tables holds no study
    try:
        return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    except optuna.exceptions.StorageInternalError:
        return []
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def claim_lock(url: str, name: str) -> Iterator[None]:
    """Hold a lock named ``name``, shared by every worker of the storage at ``url``."""
    path = sqlite_path(url)
    if path is not None:
        with open(f"{path}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    if url_scheme(url) == "postgresql":
        from sqlalchemy import text

        engine = _lock_engine(url)
        with engine.connect() as conn:
            key = _lock_key(name)
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    yield


_LOCK_ENGINES: dict[str, Any] = {}


def _lock_engine(url: str) -> Any:
    from sqlalchemy import create_engine

    if url not in _LOCK_ENGINES:
        _LOCK_ENGINES[url] = create_engine(url, pool_size=1, pool_pre_ping=True)
    return _LOCK_ENGINES[url]

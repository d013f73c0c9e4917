"""Storage URLs as users write them: the accepted schemes, validation and redaction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlopt.errors import ConfigError

SCHEMES = ("sqlite", "postgresql")
def url_scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def check_url(url: str) -> str:
    """``url`` if its scheme is supported (``postgres://`` is spelled out as ``postgresql://``).

    Raises:
        ConfigError: another scheme, or no scheme at all.
    """
    if "://" not in url:
        raise ConfigError(
            f"{url!r} is not a storage URL (accepted: sqlite:///path/to/study.db or "
            "postgresql://user:password@host:port/database)"
        )
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url_scheme(url) not in SCHEMES:
        raise ConfigError(
            f"unsupported storage {redact(url)!r} (accepted: sqlite:///path/to/study.db or "
            "postgresql://user:password@host:port/database)"
        )
    if url_scheme(url) == "sqlite" and sqlite_path(url) is None:
        raise ConfigError(f"{url!r} is an in-memory database, which no worker or later command can see "
                          "(accepted: sqlite:///path/to/study.db)")
    from sqlalchemy.engine import make_url

    try:
        make_url(url).port  # noqa: B018  (parses the port)
    except ValueError as exc:
        raise ConfigError(f"{redact(url)!r}: the port is not a number (accepted: "
                          "postgresql://user:password@host:5432/database)") from exc
    if url.startswith("postgresql://"):
        url = f"postgresql+{_postgres_driver()}://" + url[len("postgresql://"):]
    return url


def _postgres_driver() -> str:
    """The installed PostgreSQL driver: SQLAlchemy 2.1 defaults to psycopg 3, rlopt installs psycopg2."""
    import importlib.util

    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return driver
    raise ConfigError("no PostgreSQL driver is installed (accepted: pip install psycopg2-binary, "
                      "or pip install 'rlopt[postgres]')")


def redact(url: str) -> str:
    """``url`` without its password, for messages and records."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def redact_argv(words: Sequence[str]) -> list[str]:
    """Command-line words with the password of any ``--storage URL`` / ``--storage=URL`` left out."""
    out: list[str] = []
    after_storage = False
    for word in words:
        if after_storage:
            word = redact(word)
        elif word.startswith("--storage="):
            word = "--storage=" + redact(word.removeprefix("--storage="))
        after_storage = word == "--storage"
        out.append(word)
    return out


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL (None for other schemes or in-memory)."""
    if url_scheme(url) != "sqlite":
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None



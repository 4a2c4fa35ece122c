"""A throwaway PostgreSQL server for the journal's tests and benchmark (Debian's `postgresql`).

PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres` user
(or `nobody`) in a temporary directory owned by it, on a free loopback port, with trust auth.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from net_support import free_port


def find_bindir() -> Path | None:
    """The directory of `initdb` and `pg_ctl`, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _server_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and there is no `postgres` or `nobody` user to run PostgreSQL as")


@contextmanager
def postgres_server(bindir: Path, *, durable: bool = False) -> Iterator[str]:
    """Start a server; yields its URL. `durable=False` turns fsync off (tests); the benchmark keeps it."""
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="crm-mcp-pg-"))
    data = base / "data"
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, cwd=base, **run_as)  # type: ignore[call-overload]

    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c max_connections=100"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options, "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        log = (base / "log").read_text(errors="replace") if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')}\n{log}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, cwd=base, **run_as,  # type: ignore[call-overload]
        )
        shutil.rmtree(base, ignore_errors=True)

"""A real PostgreSQL server for tests: Debian's postgresql binaries, run in a temporary folder, a Unix socket only.

`initdb` refuses to run as root, so as root the server runs as `nobody` (`runuser`), in a folder owned by it.
Nothing is skipped silently: without the binaries the test fails and says how to install them (the README's
test command, scripts/test.sh, installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql (scripts/test.sh does)")
    return found


@contextmanager
def postgresql():
    """A fresh server; yields its URL (postgresql://user@/postgres?host=SOCKET_FOLDER)."""
    folder = Path(tempfile.mkdtemp(prefix="goldennoise-pg-"))
    as_root = os.geteuid() == 0
    run = ["runuser", "-u", "nobody", "--"] if as_root else []
    user = "nobody" if as_root else os.environ.get("USER", "postgres")
    if as_root:
        shutil.chown(folder, "nobody")
        folder.chmod(0o700)
    data, log = folder / "data", folder / "log"
    port = 5400 + os.getpid() % 500
    subprocess.run(run + [binary("initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync"], check=True,
                   capture_output=True)
    subprocess.run(run + [binary("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                          f"-p {port} -k {folder} -c listen_addresses='' -c fsync=on -c max_connections=200",
                          "start"], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 20
        while not (folder / f".s.PGSQL.{port}").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start:\n" + log.read_text()[-2000:])
            time.sleep(0.1)
        yield f"postgresql://{user}@/postgres?host={folder}&port={port}"
    finally:
        subprocess.run(run + [binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def reset(url: str) -> None:
    """Drop every table (a fresh store for the next test on the same server)."""
    from sqlalchemy import create_engine

    from goldennoise.store.database import metadata, url_for

    engine = create_engine(url_for(".", url))
    metadata.drop_all(engine)
    engine.dispose()

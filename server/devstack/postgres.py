"""A private PostgreSQL cluster (initdb + pg_ctl) with PostGIS and pgRouting."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from server.devstack.base import DevstackError, check_traversable, free_port

__all__ = ["EXTENSIONS", "DevstackError", "PostgresCluster", "find_pg_bindir", "free_port"]

EXTENSIONS = ("postgis", "pgrouting")


def find_pg_bindir() -> Path:
    """The newest PostgreSQL server binaries installed (Debian layout or on PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise DevstackError(
        "PostgreSQL server binaries not found. Install them with:\n"
        "  sudo apt-get install -y postgresql postgresql-15-postgis-3 postgresql-15-pgrouting"
    )


@dataclass
class PostgresCluster:
    """A cluster in ``root`` listening on 127.0.0.1:``port`` only.

    initdb refuses to run as root, so when we are root the cluster is owned by the ``postgres``
    system user (created by Debian's postgresql package) and its commands run through runuser.
    """

    root: Path
    port: int | None = None
    user: str = "crewline"

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.data = self.root / "data"
        self.state = self.root / "cluster.env"
        self.bindir = find_pg_bindir()
        self._run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:  # pragma: no cover - depends on the machine
                raise DevstackError("running as root needs the 'postgres' system user") from exc
            self._run_as = "postgres"

    # -- helpers -------------------------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        if self._run_as:
            return ["runuser", "-u", self._run_as, "--", *args]
        return list(args)

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True, check=False, **kw)
        if proc.returncode != 0:
            raise DevstackError(f"{' '.join(args[:2])} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def _load_state(self) -> dict[str, str]:
        if not self.state.exists():
            return {}
        return dict(line.split("=", 1) for line in self.state.read_text().splitlines() if "=" in line)

    @property
    def password(self) -> str:
        return self._load_state()["PASSWORD"]

    def url(self, database: str = "crewline") -> str:
        st = self._load_state()
        return f"postgresql+psycopg://{self.user}:{st['PASSWORD']}@127.0.0.1:{st['PORT']}/{database}"

    # -- lifecycle -----------------------------------------------------------------------------
    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            check_traversable(self.root, pwd.getpwnam(self._run_as))
        password = secrets.token_urlsafe(18)
        port = self.port or free_port()
        pwfile = self.root / ".pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        if self._run_as:
            pw = pwd.getpwnam(self._run_as)
            for p in (self.root, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            # every parent must be traversable by the cluster owner
            self.root.chmod(0o755)
        pwfile.chmod(0o600)
        try:
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
                "--pwfile", str(pwfile), "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                f"\n# crewline private cluster\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{self.data}'\nmax_connections = 200\n"
                "shared_buffers = 256MB\n"
                "logging_collector = off\n"
            )
        self.state.write_text(f"PORT={port}\nPASSWORD={password}\n")
        self.state.chmod(0o600)

    def is_running(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        proc = subprocess.run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"),
                              capture_output=True, text=True, check=False)
        return proc.returncode == 0

    def start(self) -> str:
        """Initialise if needed, start, wait until it accepts connections; return the admin URL."""
        self.init()
        if not self.is_running():
            log = self.root / "postgres.log"
            if self._run_as and not log.exists():
                log.touch()
                pw = pwd.getpwnam(self._run_as)
                os.chown(log, pw.pw_uid, pw.pw_gid)
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log),
                      "-w", "-t", "60", "start")
        self._wait()
        return self.url("postgres")

    def _wait(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres").replace("+psycopg", ""), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def kill(self) -> None:
        """Stop immediately (crash-like), for restart tests."""
        self.stop("immediate")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create ``name`` (idempotent) with PostGIS and pgRouting; return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres").replace("+psycopg", ""), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(name), sql.Identifier(template))
                conn.execute(stmt)
        if not template:
            with psycopg.connect(self.url(name).replace("+psycopg", ""), autocommit=True) as conn:
                for ext in EXTENSIONS:
                    try:
                        conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} CASCADE").format(
                            sql.Identifier(ext)))
                    except psycopg.errors.FeatureNotSupported as exc:
                        raise DevstackError(
                            f"extension {ext} is not installed. Install it with:\n"
                            "  sudo apt-get install -y postgresql-15-postgis-3 "
                            "postgresql-15-pgrouting") from exc
                    except psycopg.errors.UndefinedFile as exc:
                        raise DevstackError(
                            f"extension {ext} is not installed. Install it with:\n"
                            "  sudo apt-get install -y postgresql-15-postgis-3 "
                            "postgresql-15-pgrouting") from exc
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres").replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

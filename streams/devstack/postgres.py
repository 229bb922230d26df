"""The APOGÉE stand-in: a PostgreSQL cluster owned by the project, ``wal_level=logical``."""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from streams.devstack.config import CONNECTORS_DIR, StackConfig
from streams.devstack.errors import StackError
from streams.devstack.process import port_open, tail, wait_for

DB_NAME = "apogee"
DB_USER = "apogee"
SCHEMA_SQL = CONNECTORS_DIR / "apogee-schema.sql"


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise StackError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql "
            "(Debian package 'postgresql'); run ./dev setup"
        )
    return found[-1].parent


def _postgres_can_reach(path: Path) -> bool:
    """Whether user 'postgres' can traverse to ``path`` (its nearest existing ancestor)."""
    while not path.exists():
        path = path.parent
    probe = ["runuser", "-u", "postgres", "--", "test", "-x", str(path)]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _server_root(cfg: StackConfig) -> Path:
    """Where the cluster lives: ``<state>/postgres``, or a link to /var/tmp when root runs
    the stack from a directory that user 'postgres' cannot traverse (e.g. a 0700 home)."""
    link = cfg.state_dir / "postgres"
    if link.is_symlink() or os.geteuid() != 0 or _postgres_can_reach(cfg.state_dir):
        return link
    digest = hashlib.sha256(str(cfg.state_dir.resolve()).encode()).hexdigest()[:12]
    target = Path("/var/tmp") / f"reconciler-postgres-{digest}"
    target.mkdir(mode=0o755, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def _owner() -> list[str]:
    """Prefix to run server commands as 'postgres' when we are root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Postgres:
    """Create, start, stop and connect to the cluster under ``<state>/postgres``."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.root = _server_root(cfg).resolve()
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "postgres.log"
        self.password_file = cfg.state_dir / "secrets" / "apogee-db-password"

    # -- lifecycle ---------------------------------------------------------------
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and port_open(
            self.cfg.host, self.cfg.postgres_port
        )

    def start(self) -> None:
        if self.running():
            return
        if port_open(self.cfg.host, self.cfg.postgres_port):
            raise StackError(
                f"PostgreSQL: port {self.cfg.postgres_port} is taken by another program "
                "(set RECONCILER_STACK_POSTGRES_PORT)"
            )
        self._init_cluster()
        self.log.touch()
        self._chown(self.log)
        visible = self.cfg.logs_dir / "postgres.log"
        visible.parent.mkdir(parents=True, exist_ok=True)
        if not visible.is_symlink():
            visible.unlink(missing_ok=True)
            visible.symlink_to(self.log.resolve())
        self._run(
            [
                str(_bin_dir() / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "PostgreSQL did not start",
        )
        if not wait_for(self._accepts, 30):
            raise StackError("PostgreSQL started but does not accept connections", self.log)
        self._provision()

    def stop(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        self._run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            "PostgreSQL did not stop",
        )
        return True

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    # -- connections ---------------------------------------------------------------
    def password(self) -> str:
        if not self.password_file.exists():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        return self.password_file.read_text().strip()

    def dsn(self, user: str = DB_USER, dbname: str = DB_NAME) -> str:
        """A TCP DSN as the connector sees the database."""
        return (
            f"host={self.cfg.host} port={self.cfg.postgres_port} dbname={dbname} "
            f"user={user} password={self.password()}"
        )

    def admin_connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.cfg.postgres_port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
        )

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn(), autocommit=False)

    # -- internals -------------------------------------------------------------------
    def _accepts(self) -> bool:
        with self.admin_connect() as conn:
            conn.execute("SELECT 1")
        return True

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _run(self, argv: list[str], what: str) -> None:
        proc = subprocess.run([*_owner(), *argv], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(
                f"{what}: {proc.stderr.strip() or proc.stdout.strip()}\n{tail(self.log)}", self.log
            )

    def _init_cluster(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            raise StackError("running as root needs 'runuser' to start PostgreSQL as user postgres")
        for d in (self.root, self.data, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            self._chown(d)
        self.data.chmod(0o700)
        self._run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            "initdb failed",
        )
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# reconciler dev stack\n"
                f"listen_addresses = '{self.cfg.host}'\nport = {self.cfg.postgres_port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "wal_level = logical\nmax_wal_senders = 8\nmax_replication_slots = 8\n"
                "shared_buffers = 128MB\nfsync = off\nsynchronous_commit = off\n"
            )
        with (self.data / "pg_hba.conf").open("a") as f:
            f.write(f"host replication all {self.cfg.host}/32 scram-sha-256\n")

    def _provision(self) -> None:
        password = self.password()
        with self.admin_connect() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_USER,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(DB_USER), sql.Literal(password)
                )
            )
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)
            ).fetchone():
                conn.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(SCHEMA_SQL.read_text().encode())

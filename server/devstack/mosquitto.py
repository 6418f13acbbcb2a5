"""A private Mosquitto 2 broker: generated config, password file, ACL file, persistence.

Symmetric with :class:`server.devstack.postgres.PostgresCluster`: everything lives in ``root``
(``mosquitto.conf``, ``passwd``, ``acl``, ``data/``, ``mosquitto.log``, ``mosquitto.pid`` and
``broker.env`` with the port and the server user's password), the broker listens on 127.0.0.1 only
and refuses anonymous clients. Users and ACL entries are changed by rewriting the files and sending
SIGHUP, which Mosquitto answers by reloading them without dropping sessions.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from server.devstack.base import (
    DevstackError,
    check_traversable,
    chown_to,
    free_port,
    read_env_file,
    service_account,
    write_env_file,
)

INSTALL_HINT = "  sudo apt-get install -y mosquitto mosquitto-clients"

SERVER_USER = "crewline-server"

# Device (handset) access, the same for every device through %u substitution: a device reads only
# its own downlink and writes only its own uplink (issue 4; messaging guide).
DEVICE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("read", "crewline/v1/devices/%u/down/#"),
    ("write", "crewline/v1/devices/%u/up/#"),
)
# The server bridges every device, and reads $SYS for health checks ('#' does not match '$SYS').
SERVER_TOPICS: tuple[tuple[str, str], ...] = (
    ("readwrite", "crewline/#"),
    ("read", "$SYS/#"),
)

ACCESS = ("read", "write", "readwrite", "deny")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def find_mosquitto() -> tuple[Path, Path]:
    """Paths of ``mosquitto`` and ``mosquitto_passwd`` (Debian puts the broker in /usr/sbin)."""
    broker = (shutil.which("mosquitto")
              or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin"))
    passwd = shutil.which("mosquitto_passwd")
    if not broker or not passwd:
        raise DevstackError("Mosquitto 2 not found. Install it with:\n" + INSTALL_HINT)
    return Path(broker), Path(passwd)


def check_username(username: str) -> str:
    """MQTT usernames end up in topic levels through %u, so they must be plain words."""
    if not _USERNAME.match(username):
        raise ValueError(
            f"invalid MQTT username {username!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    return username


@dataclass
class AclFile:
    """Mosquitto's ``acl_file``: ``pattern`` lines for everyone, then ``topic`` lines per user.

    Only the subset Crewline writes is understood; :meth:`parse` of :meth:`render` round-trips.
    """

    patterns: list[tuple[str, str]] = field(default_factory=list)
    users: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> AclFile:
        acl = cls()
        current: str | None = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, _, rest = line.partition(" ")
            rest = rest.strip()
            if keyword == "user":
                current = rest
                acl.users.setdefault(current, [])
            elif keyword in ("topic", "pattern"):
                access, _, topic = rest.partition(" ")
                if access not in ACCESS:  # mosquitto's default access is readwrite
                    access, topic = "readwrite", rest
                entry = (access, topic.strip())
                if keyword == "pattern":
                    acl.patterns.append(entry)
                elif current is None:
                    raise ValueError(f"line {lineno}: anonymous topic rules are not used")
                else:
                    acl.users[current].append(entry)
            else:
                raise ValueError(f"line {lineno}: unknown ACL keyword {keyword!r}")
        return acl

    def render(self) -> str:
        out = [
            "# Mosquitto ACL maintained by Crewline; edits by hand are overwritten.",
            "# pattern lines apply to every user (%u = username, %c = client id).",
        ]
        out += [f"pattern {access} {topic}" for access, topic in self.patterns]
        for user in sorted(self.users):
            out.append("")
            out.append(f"user {user}")
            out += [f"topic {access} {topic}" for access, topic in self.users[user]]
        return "\n".join(out) + "\n"


@dataclass
class MosquittoBroker:
    """A broker in ``root`` on 127.0.0.1:``port`` (a free port when None, kept across restarts)."""

    root: Path
    port: int | None = None
    server_user: str = SERVER_USER
    device_patterns: tuple[tuple[str, str], ...] = DEVICE_PATTERNS
    max_queued_messages: int = 10_000
    max_packet_size: int = 1_048_576

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.data = self.root / "data"
        self.conf = self.root / "mosquitto.conf"
        self.password_file = self.root / "passwd"
        self.acl_file = self.root / "acl"
        self.pid_file = self.root / "mosquitto.pid"
        self.log_file = self.root / "mosquitto.log"
        self.state = self.root / "broker.env"
        self.broker_bin, self.passwd_bin = find_mosquitto()
        # As root Mosquitto drops to the 'mosquitto' user after reading its config, then reads the
        # password and ACL files and writes persistence, pid and log files as that user.
        self._account = service_account("mosquitto")

    # -- state ---------------------------------------------------------------------------------
    def _load_state(self) -> dict[str, str]:
        return read_env_file(self.state)

    @property
    def bound_port(self) -> int:
        return int(self._load_state()["PORT"])

    @property
    def server_password(self) -> str:
        return self._load_state()["SERVER_PASSWORD"]

    def url(self) -> str:
        """``mqtt://user:password@127.0.0.1:port`` with the server user's credentials."""
        st = self._load_state()
        return (f"mqtt://{st['SERVER_USER']}:{st['SERVER_PASSWORD']}"
                f"@127.0.0.1:{st['PORT']}")

    # -- files ---------------------------------------------------------------------------------
    def init(self) -> None:
        """Create the directory, config, password and ACL files once; later calls keep them."""
        self.root.mkdir(parents=True, exist_ok=True)
        check_traversable(self.root, self._account)
        self.root.chmod(0o755)
        self.data.mkdir(exist_ok=True)
        if not self.state.exists():
            write_env_file(
                self.state,
                {"PORT": str(self.port or free_port()),
                 "SERVER_USER": self.server_user,
                 "SERVER_PASSWORD": secrets.token_urlsafe(24)},
                header="private Mosquitto broker of Crewline (generated)",
            )
        st = self._load_state()
        self.server_user = st.get("SERVER_USER", self.server_user)
        self._write_conf()
        if not self.password_file.exists():
            self._passwd("-c", "-b", str(self.password_file), self.server_user,
                         st["SERVER_PASSWORD"])
        if not self.acl_file.exists():
            self.write_acl(AclFile(patterns=list(self.device_patterns),
                                   users={self.server_user: list(SERVER_TOPICS)}))
        self._fix_ownership()

    def _write_conf(self) -> None:
        lines = [
            "# generated by crewline devstack; regenerated on every start",
            "per_listener_settings false",
            f"listener {self.bound_port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
            "persistence true",
            f"persistence_location {self.data}/",
            "autosave_interval 30",
            f"pid_file {self.pid_file}",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_packet_size {self.max_packet_size}",
        ]
        if self._account is not None:
            lines.append(f"user {self._account.pw_name}")
        self.conf.write_text("\n".join(lines) + "\n")

    def _fix_ownership(self) -> None:
        paths = [self.root, self.data, *self.data.iterdir()]
        paths += [p for p in (self.password_file, self.acl_file, self.log_file, self.pid_file)
                  if p.exists()]
        chown_to(self._account, *paths)
        for p in (self.password_file, self.acl_file):
            if p.exists():
                p.chmod(0o600)

    def _passwd(self, *args: str) -> None:
        proc = subprocess.run([str(self.passwd_bin), *args], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise DevstackError(f"mosquitto_passwd failed: {proc.stdout}{proc.stderr}")

    def read_acl(self) -> AclFile:
        return AclFile.parse(self.acl_file.read_text()) if self.acl_file.exists() else AclFile()

    def write_acl(self, acl: AclFile) -> None:
        tmp = self.acl_file.with_name(".acl.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(acl.render())
        chown_to(self._account, tmp)
        os.replace(tmp, self.acl_file)

    # -- users -----------------------------------------------------------------------------------
    def add_user(self, username: str, password: str,
                 topics: list[tuple[str, str]] | None = None, *, reload: bool = True) -> None:
        """Create or update ``username``; ``topics`` adds per-user ACL lines beyond the patterns."""
        check_username(username)
        self.init()
        self._passwd("-b", str(self.password_file), username, password)
        if topics is not None:
            for access, _ in topics:
                if access not in ACCESS:
                    raise ValueError(f"unknown ACL access {access!r}")
            acl = self.read_acl()
            acl.users[username] = list(topics)
            self.write_acl(acl)
        self._fix_ownership()
        if reload:
            self.reload()

    def remove_user(self, username: str, *, reload: bool = True) -> None:
        """Remove ``username`` from the password and ACL files. Its open connections stay open
        until they reconnect: Mosquitto 2.0 does not disconnect clients on reload."""
        check_username(username)
        if username == self.server_user:
            raise ValueError("the server user cannot be removed")
        self._passwd("-D", str(self.password_file), username)
        acl = self.read_acl()
        if acl.users.pop(username, None) is not None:
            self.write_acl(acl)
        self._fix_ownership()
        if reload:
            self.reload()

    # -- lifecycle ---------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid when it runs from our config (a stale pid file is ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            return None
        if str(self.conf).encode() not in cmdline:
            return None  # the pid was reused by another process
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nState:\tZ" in status:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 15) -> str:
        """Initialise if needed, start, wait until it accepts connections; return the server URL."""
        self.init()
        if not self.is_running():
            self.pid_file.unlink(missing_ok=True)
            proc = subprocess.run([str(self.broker_bin), "-c", str(self.conf), "-d"],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise DevstackError(
                    f"mosquitto failed to start:\n{proc.stdout}{proc.stderr}{self._log_tail()}")
        self.wait_until_accepting(timeout)
        return self.url()

    def wait_until_accepting(self, timeout: float = 15) -> None:
        """Until a TCP connection to the listener succeeds; fail fast if the daemon died."""
        deadline = time.monotonic() + timeout
        seen_pid = False
        while True:
            if self.is_running():
                seen_pid = True
                try:
                    with socket.create_connection(("127.0.0.1", self.bound_port), timeout=1):
                        return
                except OSError:
                    pass
            elif seen_pid:
                raise DevstackError(f"mosquitto exited during start-up{self._log_tail()}")
            if time.monotonic() > deadline:
                raise DevstackError(
                    f"mosquitto not accepting on port {self.bound_port} after {timeout}s"
                    f"{self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_file.exists():
            return ""
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return f"\n--- {self.log_file} ---\n" + "\n".join(tail)

    def reload(self) -> None:
        """SIGHUP: reload the password and ACL files (no-op when the broker is not running)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                if sig == signal.SIGKILL:
                    raise DevstackError(f"mosquitto (pid {pid}) did not exit")
                self._signal_and_wait(signal.SIGKILL, 5)
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence database and exits."""
        self._signal_and_wait(signal.SIGTERM, 15)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """Stop immediately (crash-like): whatever was not autosaved is lost."""
        self._signal_and_wait(signal.SIGKILL, 5)
        self.pid_file.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

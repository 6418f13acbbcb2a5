"""What the private services share: their error, port choice and file ownership when run as root."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path


class DevstackError(RuntimeError):
    """A private service could not be started; the message says what to install or fix."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def preferred_port(port: int) -> int:
    """``port`` when it is free, else any free port: the demo keeps stable ports when it can."""
    return port if port and port_is_free(port) else free_port()


def service_account(name: str) -> pwd.struct_passwd | None:
    """The system user a service must drop to when we are root; None when we are not root.

    PostgreSQL refuses to run as root and Mosquitto drops to its own user, so as root the files of
    a private instance belong to that user (created by the Debian package of the service).
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:  # pragma: no cover - depends on the machine
        raise DevstackError(
            f"running as root needs the '{name}' system user, which the Debian package creates"
        ) from exc


def check_traversable(path: Path, account: pwd.struct_passwd | None) -> None:
    """Fail early, and clearly, when ``account`` could not reach ``path`` through its parents.

    pytest's ``tmp_path`` (under a 0700 ``/tmp/pytest-of-root``) and checkouts under ``/root`` are
    the usual culprits: the service starts as another user and would fail with a vaguer error.
    """
    if account is None:
        return
    for parent in Path(path).resolve().parents:
        st = parent.stat()
        if st.st_uid == account.pw_uid:
            continue
        mode = st.st_mode
        other_x = mode & 0o001
        group_x = mode & 0o010 and st.st_gid == account.pw_gid
        if not (other_x or group_x):
            raise DevstackError(
                f"{parent} is not traversable by the '{account.pw_name}' user, which runs the "
                f"service under {path}; use a directory whose parents are world-searchable "
                f"(for tests: tempfile.mkdtemp(), not pytest's tmp_path) or `chmod o+x {parent}`"
            )


def chown_to(account: pwd.struct_passwd | None, *paths: Path) -> None:
    if account is None:
        return
    for p in paths:
        os.chown(p, account.pw_uid, account.pw_gid)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (no quoting, no expansion) as written by :func:`write_env_file`."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def write_env_file(path: Path, values: dict[str, str], header: str = "") -> None:
    """Write atomically with mode 0600: these files hold passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = "".join(f"# {line}\n" for line in header.splitlines())
    body += "".join(f"{k}={v}\n" for k, v in values.items())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    os.replace(tmp, path)

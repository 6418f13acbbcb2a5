"""Crewline's own processes (server, worker) run in the background for the demo.

Each runs in its own session (so Ctrl-C on ``make`` does not reach it and stopping it reaches the
whole process group, uvicorn workers included), with a pid file under ``var/run`` and its output
appended to ``var/log/<name>.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from server.devstack.base import DevstackError


@dataclass
class BackgroundProcess:
    name: str
    var_dir: Path

    def __post_init__(self) -> None:
        self.var_dir = Path(self.var_dir).resolve()
        self.pid_file = self.var_dir / "run" / f"{self.name}.pid"
        self.log_file = self.var_dir / "log" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid from the pid file if that process still runs and is the one we started."""
        popen = getattr(self, "_popen", None)
        if popen is not None:
            # Started by this Python process: between fork and exec /proc/<pid>/environ still
            # shows our own environment, so the handle is the only reliable answer.
            return popen.pid if popen.poll() is None else None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        if "\nState:\tZ" in status:
            return None
        # The marker in its environment tells our process from an unrelated one reusing the pid.
        if f"CREWLINE_DEVSTACK_PROCESS={self.name}:{self.var_dir}".encode() not in environ:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**env, "CREWLINE_DEVSTACK_PROCESS": f"{self.name}:{self.var_dir}"}
        with open(self.log_file, "ab") as log, open(os.devnull, "rb") as devnull:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: "
                      f"{' '.join(argv)} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=devnull, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        self._popen: subprocess.Popen | None = proc
        return proc.pid

    def stop(self, timeout: float = 20) -> bool:
        """SIGTERM to the process group, SIGKILL after ``timeout``; True if something ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                self._signal_group(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - not our group after all
            os.kill(pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return f"\n--- last lines of {self.log_file} ---\n" + "\n".join(tail)


def wait_for_http(url: str, process: BackgroundProcess, timeout: float = 90) -> None:
    """Until ``url`` answers 200, failing early (with its log) if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.is_running():
            raise DevstackError(f"{process.name} exited during start-up{process.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise DevstackError(f"{url} did not answer 200 within {timeout}s ({last})"
                        f"{process.log_tail()}")

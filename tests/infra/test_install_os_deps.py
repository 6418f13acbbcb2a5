"""scripts/install-os-deps.sh: idempotent, no network when nothing is missing, and the exact
command when it cannot install."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "install-os-deps.sh"


def scripts_dir(tmp: Path, **lists: str) -> Path:
    """A copy of the script beside package lists of our choosing."""
    d = tmp / "scripts"
    d.mkdir()
    shutil.copy(SCRIPT, d / SCRIPT.name)
    for name, text in lists.items():
        (d / f"{name.replace('_', '-')}.txt").write_text(text)
    for p in (tmp, d, *d.iterdir()):
        p.chmod(0o755)
    return d / SCRIPT.name


def run(script: Path, user: str | None = None, **env: str) -> subprocess.CompletedProcess:
    argv = ["bash", str(script)]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env})


def test_lists_are_well_formed() -> None:
    for path in sorted((REPO_ROOT / "scripts").glob("os-packages*.txt")):
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            assert len(words) <= 1, f"{path.name}: one package per line: {line!r}"


def test_nothing_to_do_is_fast_and_offline(service_dir: Path) -> None:
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian system")
    script = scripts_dir(service_dir, os_packages="# base\nbash\ncoreutils  # comment\n",
                         os_packages_extra="bash\n")
    start = time.monotonic()
    proc = run(script)
    assert proc.returncode == 0, proc.stderr
    assert "all 2 OS packages present" in proc.stdout
    assert time.monotonic() - start < 5


def test_the_real_lists_are_installed() -> None:
    """After `make deps` (which `make test` runs first) nothing is missing."""
    proc = run(SCRIPT)
    if proc.returncode != 0 and not os.environ.get("CI"):
        pytest.skip(f"OS packages missing here: {proc.stdout}{proc.stderr}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OS packages present" in proc.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as an unprivileged user")
def test_without_root_or_sudo_it_prints_the_command(service_dir: Path) -> None:
    script = scripts_dir(service_dir, os_packages="bash\npostgresql-@PG@-postgis-3\n",
                         os_packages_x="crewline-no-such-package\n")
    proc = run(script, user="nobody", CREWLINE_PG_MAJOR="99")
    assert proc.returncode == 1
    assert ("apt-get update && apt-get install -y --no-install-recommends "
            "postgresql-99-postgis-3 crewline-no-such-package") in proc.stderr

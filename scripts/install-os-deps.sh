#!/usr/bin/env bash
# Install the Debian/Ubuntu packages Crewline's demo and tests need: every package listed in
# scripts/os-packages.txt and scripts/os-packages-*.txt (one per line, `#` comments, @PG@ = the
# PostgreSQL major version).
#
# Idempotent and quiet when nothing is missing: packages already installed (dpkg) are skipped, so
# a second run needs neither the network nor root. Uses sudo when not root. Where it cannot
# install (no root, no usable sudo, apt-get failing) it prints the exact command and exits 1.
#
# Environment: CREWLINE_PG_MAJOR forces the PostgreSQL major version.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "install-os-deps: $*"; }
err() { echo "install-os-deps: $*" >&2; }

shopt -s nullglob
lists=("$here/os-packages.txt" "$here"/os-packages-*.txt)
shopt -u nullglob

# The lists, without comments and blanks, in order, each package once.
raw=()
for list in "${lists[@]}"; do
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%%#*}"
        for word in $line; do raw+=("$word"); done
    done <"$list"
done

installed() { [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == ii* ]]; }

if [[ $EUID -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
    SUDO=(sudo)   # asks for the password when on a terminal
else
    SUDO=(none)
fi

as_root() {
    [[ "${SUDO[*]}" != none ]] || return 1
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "$@"
}

apt_lists_empty() { ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; }
updated=no
apt_update() {
    [[ $updated == yes ]] && return 0
    say "apt-get update"
    as_root apt-get update -qq && updated=yes
}

# The PostgreSQL major version: forced, else the newest installed server, else the distribution's
# default (what the `postgresql` metapackage depends on).
pg_major() {
    if [[ -n "${CREWLINE_PG_MAJOR:-}" ]]; then echo "$CREWLINE_PG_MAJOR"; return; fi
    local v
    v="$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sed -E 's#.*/postgresql/([0-9]+)/.*#\1#' \
        | sort -n | tail -n1)"
    if [[ -z "$v" ]] && command -v apt-cache >/dev/null 2>&1; then
        if apt_lists_empty; then apt_update >&2 || true; fi
        v="$(apt-cache depends postgresql 2>/dev/null \
            | sed -nE 's/^ *Depends: postgresql-([0-9]+)$/\1/p' | head -n1)"
    fi
    echo "$v"
}

packages=()
pg=""
for p in "${raw[@]}"; do
    if [[ "$p" == *@PG@* ]]; then
        [[ -n "$pg" ]] || pg="$(pg_major)"
        if [[ -z "$pg" ]]; then
            err "cannot tell which PostgreSQL version to install (no server installed, apt knows no"
            err "'postgresql' package); set CREWLINE_PG_MAJOR, e.g. CREWLINE_PG_MAJOR=15"
            exit 1
        fi
        p="${p//@PG@/$pg}"
    fi
    [[ " ${packages[*]} " == *" $p "* ]] || packages+=("$p")
done

missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done

if [[ ${#missing[@]} -eq 0 ]]; then
    say "all ${#packages[@]} OS packages present"
    exit 0
fi

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
say "missing: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    err "no apt-get here: install the equivalents of these Debian packages: ${missing[*]}"
    exit 1
fi
if [[ "${SUDO[*]}" == none ]]; then
    err "not root and no usable sudo; as root, run:"
    err "  $cmd"
    exit 1
fi

# Install from the lists as they are first; refresh them only when that fails (or there are none).
if apt_lists_empty; then apt_update || true; fi
if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    if [[ $updated == no ]] && apt_update && \
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        :
    else
        err "apt-get failed; fix the cause above, then run as root:"
        err "  $cmd"
        exit 1
    fi
fi

still=()
for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
if [[ ${#still[@]} -gt 0 ]]; then
    err "still not installed: ${still[*]}; as root, run:"
    err "  apt-get install -y --no-install-recommends ${still[*]}"
    exit 1
fi
say "installed ${missing[*]}"

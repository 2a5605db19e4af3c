#!/usr/bin/env bash
# One entry point for setting up and running vision-toolkit from a checkout.
#
#   ./dev.sh demo    set up, then open the app in the browser (the local engine: no API key needed)
#   ./dev.sh test    set up (Tesseract and Chromium from the system packages), then run the test suite
#   ./dev.sh setup   only set up: .venv with the package and its extras
#
# Set-up is idempotent and quick when nothing changed. VENV=path picks another virtualenv.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-ocr,heif,apps,dask,dev}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi
}

apt_install() {
  # apt_install BINARY PACKAGE...: install Debian packages when BINARY is missing, if we may.
  local binary=$1; shift
  command -v "$binary" >/dev/null && return 0
  if ! command -v apt-get >/dev/null; then
    say "$binary not found and this is not a Debian/Ubuntu system: install $* yourself (tests that need it will skip)"
    return 0
  fi
  say "installing $* (apt)"
  if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }; then
    say "could not install $* (no root or sudo): tests that need it will skip"
  fi
}

setup_python() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: vision-toolkit needs Python 3.10 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 2
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  local stamp="$VENV/.vision-installed" want
  want="$EXTRAS $(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing vision-toolkit[$EXTRAS] into $VENV"
    "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup)
    setup_python
    ;;
  demo)
    apt_install tesseract tesseract-ocr || true
    setup_python
    say "vision app --open   (Point & Ask, Label & Receipt, Imagine; the local engine needs no key; Ctrl-C stops)"
    exec "$VENV/bin/vision" app --open "$@"
    ;;
  test)
    apt_install tesseract tesseract-ocr
    apt_install chromium chromium fonts-dejavu-core  # the browser tests drive it; they skip without it
    setup_python
    say "ruff"
    "$VENV/bin/ruff" check .
    say "pytest"
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    [ "$cmd" = help ] || exit 2
    ;;
esac

#!/usr/bin/env bash
# Create the virtual environment with Python >= 3.11; on Debian, python3-venv may be missing.
set -euo pipefail
venv=${1:-.venv}
[ -x "$venv/bin/python" ] && exit 0
py=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    py=$candidate; break
  fi
done
if [ -z "$py" ]; then
  echo "twitchwatch needs Python >= 3.11: install it (Debian 12: apt-get install python3) and run make again" >&2
  exit 1
fi
if ! "$py" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  pkg="python3-venv"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq "$pkg" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo apt-get install -y -qq "$pkg" >/dev/null
  else echo "cannot create a virtual environment: install Debian's $pkg (sudo apt-get install $pkg)" >&2; exit 1
  fi
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip

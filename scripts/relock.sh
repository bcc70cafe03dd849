#!/usr/bin/env bash
# Renew constraints.txt: install the project with its dev extra into a throw-away venv, with no constraints
# (the newest releases pyproject.toml allows), and freeze what was installed under the file's header.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/bootstrap-venv.sh "$tmp/venv" >/dev/null
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check '.[dev]'
{
  sed -n '/^#/p;/^[^#]/q' constraints.txt
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^twitchwatch[= @]'
} >"$tmp/constraints.txt"
if cmp -s "$tmp/constraints.txt" constraints.txt; then
  echo "constraints.txt is already the newest set"
else
  diff -u constraints.txt "$tmp/constraints.txt" | grep '^[-+][^-+#]' || true
  mv "$tmp/constraints.txt" constraints.txt
  echo "constraints.txt renewed: run make test, then commit it"
fi

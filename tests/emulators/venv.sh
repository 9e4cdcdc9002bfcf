#!/usr/bin/env bash
# Makes (or keeps) the emulator venv, .venv-moto at the repository root, from requirements.txt beside
# this script. A venv made from other pins is made again. The one place the venv is installed: used by
# tests/run.sh, terraform/tests/run.sh and the Rust tests' harness (tests/artifacts/src/emulators.rs).
# Exit status 0 when the venv is ready; pip's output goes to stderr only when it fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(cd "$here/../.." && pwd)/.venv-moto"
requirements="$here/requirements.txt"

if [[ -x "$venv/bin/moto_server" && -x "$venv/bin/aws" ]] && cmp -s "$requirements" "$venv/requirements.txt"; then
  exit 0
fi
echo "installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into .venv-moto" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rm -rf "$venv"
if python3 -m venv "$venv" >"$log" 2>&1 && "$venv/bin/pip" install --quiet -r "$requirements" >>"$log" 2>&1 &&
  "$venv/bin/python" -c "import moto.server, boto3, awscli" >>"$log" 2>&1; then
  cp "$requirements" "$venv/requirements.txt"
  exit 0
fi
tail -n 15 "$log" >&2
rm -rf "$venv"
exit 1

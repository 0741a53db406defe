#!/usr/bin/env bash
# One-command set-up and run for unfoldtheory.
#   ./run.sh verify [args]   install what is needed, then run the verification suite (unfoldtheory verify --profile
#                            quick; args go to it, e.g. --profile full --out DIR)
#   ./run.sh test [args]     install what is needed, lint (ruff, the project's config), then run the test suite
#                            (args go to pytest; it includes the docstring examples and the README's example)
# Uses $PYTHON (default python3) and installs into its environment; create and activate a virtualenv first
# if you want isolation.  Without a GPU it installs the CPU build of torch before anything else so that no
# resolver pulls a multi-GB CUDA build; with a GPU, install torch your own way first (it is then kept).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

install() {
  local extras=$1
  if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      "$PY" -m pip install --quiet torch
    else
      "$PY" -m pip install --quiet "torch==2.13.0"
    fi
  fi
  "$PY" -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
}

cmd=${1:-}
shift || true
case "$cmd" in
  verify)
    install plot,symbolic
    exec "$PY" -m unfoldtheory verify --profile quick "$@"
    ;;
  test)
    install test
    "$PY" -m ruff check .
    exec "$PY" -m pytest -q "$@"
    ;;
  *)
    echo "usage: ./run.sh verify [args] | ./run.sh test [pytest args]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Create (or repair) the project's virtual environment and install the package editable with its `dev` extra.
# Run by every Makefile target; takes well under a second when .venv is already installed and healthy.
#
#   tools/bootstrap.sh                        # .venv with python3.11 (else python3, if it is 3.10 or newer)
#   PYTHON=/path/to/python3.11 tools/bootstrap.sh
#   VENV=/somewhere/else tools/bootstrap.sh
#
# It repairs what breaks a venv in practice: a .venv whose interpreter was removed or upgraded away (dangling
# symlinks), one made by a Python that is too old, one without pip (Debian's `python3 -m venv` without the
# python3-venv package), one copied or moved from another folder (scripts with a stale `#!` line), and an
# install that was interrupted or predates the last change to pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STAMP="$VENV/.fastai_memstream-installed"
MIN="(3, 10)"   # pyproject.toml: requires-python = ">=3.10"; the README promises 3.11

ok_python() { "$1" -c "import sys, venv; sys.exit(sys.version_info[:2] < $MIN)" >/dev/null 2>&1; }

find_python() {
  local c
  for c in ${PYTHON:-python3.11 python3 python}; do   # PYTHON, when given, is the only candidate
    if command -v "$c" >/dev/null 2>&1 && ok_python "$c"; then command -v "$c"; return 0; fi
  done
  return 1
}

venv_problem() {
  # Prints why $VENV is unusable, or nothing when it is fine.
  local py="$VENV/bin/python"
  [ -e "$VENV" ] || return 0
  [ -x "$py" ] || { echo "$py is missing or points to a removed interpreter"; return 0; }
  ok_python "$py" || { echo "$py is not Python 3.10 or newer ($("$py" --version 2>&1 || true))"; return 0; }
  "$py" -m pip --version >/dev/null 2>&1 || { echo "it has no pip"; return 0; }
  # Scripts (pip, nbdev-test, pytest) start with `#!<venv>/bin/python`: a moved or copied venv runs another one
  local first interp dir
  first="$(head -n1 "$VENV/bin/pip" 2>/dev/null || true)"
  case "$first" in
    '#!/bin/sh'*|'') ;;   # pip's wrapper form for very long paths: nothing to compare
    '#!'*) interp="${first#\#!}"; interp="${interp%% *}"
           dir="$(cd "$(dirname "$interp")" 2>/dev/null && pwd -P || true)"
           [ "$dir" = "$(cd "$VENV/bin" && pwd -P)" ] || { echo "its scripts run $interp (was it moved or copied?)"; return 0; } ;;
  esac
}

create_venv() {
  local py
  if ! py="$(find_python)"; then
    echo "error: no Python 3.10 or newer with the venv module found (tried: ${PYTHON:-python3.11 python3 python})." >&2
    echo "       Install Python 3.11 (Debian/Ubuntu: apt-get install python3.11 python3.11-venv), or run" >&2
    echo "       make PYTHON=/path/to/python3.11 ..." >&2
    exit 1
  fi
  echo "creating $VENV with $py ($("$py" --version 2>&1))"
  if ! "$py" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "error: '$py -m venv $VENV' failed. On Debian/Ubuntu install the venv package for this Python" >&2
    echo "       (apt-get install python3-venv, or python3.11-venv), then run make again." >&2
    exit 1
  fi
}

# The stamp holds a hash of pyproject.toml, not its time: nbdev-export rewrites the file (same contents) on every run.
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"

# Installed, up to date with pyproject.toml, and importing this checkout (not a moved or copied one): nothing to do.
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] &&
   "$VENV/bin/python" -I -c "
import sys, importlib.metadata as md, pathlib, fastai_memstream
for d in ('fastai', 'nbdev', 'pytest', 'nbconvert'): md.version(d)
sys.exit(pathlib.Path(fastai_memstream.__file__).resolve().parents[1] != pathlib.Path.cwd().resolve())" 2>/dev/null; then
  exit 0
fi

problem="$(venv_problem)"
if [ -n "$problem" ]; then
  echo "$VENV is unusable: $problem. Recreating it."
  rm -rf "$VENV"
fi
[ -e "$VENV" ] || create_venv

rm -f "$STAMP"
echo "installing fastai_memstream[dev] into $VENV (a few minutes the first time)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip   # an old pip cannot install a pyproject-only package editable
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
echo "$want" > "$STAMP"

#!/usr/bin/env bash
# Builds __NAME__.wasm, a WebAssembly component of the novum:plugin@0.1.0
# world `__WORLD__` (wit/), from app.py and novum_plugin.py with
# componentize-py ($COMPONENTIZE_PY, else the PATH).
set -euo pipefail
tool=${COMPONENTIZE_PY:-$(command -v componentize-py || true)}
[[ -z $tool || $tool == /* ]] || tool=$PWD/$tool
cd "$(dirname "$0")"
if [[ -z $tool ]]; then
  echo "componentize-py is not installed: pip install componentize-py==__COMPONENTIZE_VERSION__" \
    "(or set COMPONENTIZE_PY to it; novum's tests/bootstrap.sh installs it into target/componentize-py)" >&2
  exit 2
fi
"$tool" -q -d wit -w __WORLD__ componentize -p . app -o __NAME__.wasm
echo "built $PWD/__NAME__.wasm"

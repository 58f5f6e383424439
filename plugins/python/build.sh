#!/usr/bin/env bash
# Builds every Python plugin under plugins/python/*/app.py into a WebAssembly
# component with componentize-py, against the same WIT worlds as the Rust
# plugins (wit/since_v0.1.0). The world is named on the first line of app.py
# (`# world: filter`, `weigher` or `quota-policy`); the shared SDK is
# plugins/python/sdk/novum_plugin.py.
#
#   plugins/python/build.sh [OUT_DIR]     (default: target/python-plugins)
#
# Writes OUT_DIR/<plugin directory>.wasm, rebuilding only what is out of date.
# componentize-py comes from $COMPONENTIZE_PY, else target/componentize-py
# (tests/bootstrap.sh installs it there), else the PATH. Without it this
# exits 2 with a message saying how to get it: the controller's own build
# never needs Python.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/python-plugins}
wit=$root/wit/since_v0.1.0
sdk=$here/sdk

tool=${COMPONENTIZE_PY:-}
if [[ -z $tool ]]; then
  if [[ -x $root/target/componentize-py/bin/componentize-py ]]; then
    tool=$root/target/componentize-py/bin/componentize-py
  elif command -v componentize-py >/dev/null; then
    tool=$(command -v componentize-py)
  fi
fi
if [[ -z $tool ]]; then
  echo "python plugins: componentize-py is not installed; run tests/bootstrap.sh (it installs" \
    "it into target/componentize-py) or pip install componentize-py, then run $0 again" >&2
  exit 2
fi
version=$("$tool" --version)

mkdir -p "$out"
for app in "$here"/*/app.py; do
  dir=$(dirname "$app")
  name=$(basename "$dir")
  world=$(sed -n '1s/^# world: *\([a-z-]*\).*/\1/p' "$app")
  if [[ -z $world ]]; then
    echo "python plugins: $app does not start with '# world: <filter|weigher|quota-policy>'" >&2
    exit 1
  fi
  wasm=$out/$name.wasm
  stamp=$out/$name.stamp
  # Up to date: built by this componentize-py, newer than its sources.
  if [[ -f $wasm && -f $stamp && $(cat "$stamp") == "$version" ]] &&
    [[ -z $(find "$dir" "$sdk" "$wit" -newer "$wasm" -type f -not -path "*/__pycache__/*" -print -quit) ]]; then
    continue
  fi
  echo "python plugins: building $name ($world) with $version"
  rm -f "$stamp"
  "$tool" -q -d "$wit" -w "$world" componentize -p "$dir" -p "$sdk" app -o "$wasm.tmp"
  mv "$wasm.tmp" "$wasm"
  echo "$version" >"$stamp"
done

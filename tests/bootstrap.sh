#!/usr/bin/env bash
# Installs what novum needs on a fresh Debian machine (run as root). Idempotent:
# every step checks first and does nothing when its part is already there.
set -euo pipefail

need_pkgs=()
for pkg in libvirt-dev pkg-config gcc libc6-dev make python3; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
  echo "bootstrap: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null; then
  echo "bootstrap: rustup is required (https://rustup.rs); install it, then run this again" >&2
  exit 1
fi
# rust-toolchain.toml names the toolchain and the wasm32-wasip2 target; make sure both are there.
cd "$(dirname "$0")/.."
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain list | grep -q "^$toolchain" || rustup toolchain install "$toolchain" --profile minimal -c rustfmt,clippy
rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-wasip2 ||
  rustup target add wasm32-wasip2 --toolchain "$toolchain"

# The real openstack CLI for the end-to-end test, in a venv under target/.
cli_venv="${NOVUM_CLI_VENV:-$PWD/target/openstack-cli}"
if [[ ! -x "$cli_venv/bin/openstack" ]]; then
  echo "bootstrap: installing python-openstackclient into $cli_venv"
  python3 -m venv "$cli_venv" 2>/dev/null || {
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$cli_venv"
  }
  "$cli_venv/bin/pip" install -q python-openstackclient
fi

# The real Tempest (compute API tests) in the same venv, for the tempest e2e test.
tempest_version="${NOVUM_TEMPEST_VERSION:-47.0.0}"
if ! "$cli_venv/bin/python" -c 'import tempest' 2>/dev/null; then
  echo "bootstrap: installing tempest $tempest_version into $cli_venv"
  "$cli_venv/bin/pip" install -q "tempest==$tempest_version"
fi

# schemathesis (fuzzes the API from its OpenAPI document, for the schemathesis
# e2e test) in a venv of its own: its dependencies need not agree with the
# openstack CLI's.
schemathesis_venv="${NOVUM_SCHEMATHESIS_VENV:-$PWD/target/schemathesis}"
schemathesis_version="${NOVUM_SCHEMATHESIS_VERSION:-4.32.5}"
if ! "$schemathesis_venv/bin/schemathesis" --version 2>/dev/null | grep -q "version $schemathesis_version\$"; then
  echo "bootstrap: installing schemathesis $schemathesis_version into $schemathesis_venv"
  python3 -m venv "$schemathesis_venv" 2>/dev/null || {
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$schemathesis_venv"
  }
  "$schemathesis_venv/bin/pip" install -q "schemathesis==$schemathesis_version"
fi

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

# Real guests: libvirtd and QEMU (the qemu:///system driver), nftables (the
# security groups on the host), genisoimage (config drives), and what
# tests/guest/build.sh makes the test guest with. Debian 12's qemu-system-x86
# is 7.2 while the machine may carry a newer qemu-utils from backports, which
# it conflicts with: qemu-utils of the same version goes beside it.
guest_pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 nftables
  genisoimage syslinux syslinux-common mtools dosfstools binutils iproute2 iputils-ping)
need_guest=()
for pkg in "${guest_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_guest+=("$pkg")
done
if ((${#need_guest[@]})); then
  echo "bootstrap: installing ${need_guest[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  qemu_version=$(apt-cache policy qemu-system-x86 | awk '/Candidate/{print $2}')
  apt-get install -y -qq --no-install-recommends --allow-downgrades "${need_guest[@]}" \
    "qemu-utils=$qemu_version" >/dev/null
fi
# libvirt-daemon-system would make these; the daemon alone needs them by hand.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt/qemu /var/lib/novum
# As udev would: /dev/kvm for the kvm group. Otherwise libvirtd (root) sees
# KVM and QEMU (libvirt-qemu) does not, and libvirt probes QEMU anew on every
# domain start (~50 s).
if [[ -c /dev/kvm ]]; then
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
fi
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
# Bridged IPv4 traffic passes the inet forward hook, where the security
# groups (with connection tracking) are enforced.
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
sysctl -qw net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null || true

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

# componentize-py (Python plugins: plugins/python) in a venv of its own, and
# the Python plugins built with it into target/python-plugins. The
# controller's build never needs Python; only these plugins and their tests do.
componentize_venv="${NOVUM_COMPONENTIZE_VENV:-$PWD/target/componentize-py}"
componentize_version="${NOVUM_COMPONENTIZE_PY_VERSION:-0.25.1}"
if ! "$componentize_venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $componentize_version"; then
  echo "bootstrap: installing componentize-py $componentize_version into $componentize_venv"
  python3 -m venv "$componentize_venv" 2>/dev/null || {
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$componentize_venv"
  }
  "$componentize_venv/bin/pip" install -q "componentize-py==$componentize_version"
fi
COMPONENTIZE_PY="$componentize_venv/bin/componentize-py" bash plugins/python/build.sh target/python-plugins

# The test guest (kernel + busybox initramfs + bootable disks), from Debian's
# packages, cached under target/test-guest.
bash tests/guest/build.sh target/test-guest

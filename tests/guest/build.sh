#!/usr/bin/env bash
# Builds novum's test guest from Debian packages alone (no other downloads):
# the kernel of linux-image-cloud-amd64 and an initramfs holding
# busybox-static, a few kernel modules and tests/guest/init. It writes, into
# OUT (default target/test-guest):
#   vmlinuz        the kernel           (an AKI: direct kernel boot)
#   initrd.img     the initramfs        (an ARI)
#   disk.raw       a bootable disk: FAT with SYSLINUX, kernel and initramfs
#   disk.qcow2     the same disk as qcow2
# It rebuilds only when this script, the init script or a package changed
# (a stamp records them), so later calls take milliseconds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/test-guest}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The kernel package's real name (linux-image-cloud-amd64 depends on it).
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [[ -z "$kernel_pkg" ]]; then
  apt-get update -qq
  kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
versions=$(apt-cache policy "$kernel_pkg" busybox-static | awk '/Candidate/{print $2}' | tr '\n' ' ')
stamp="$kernel_pkg $versions $(sha256sum "$0" "$here/init" | awk '{print $1}' | tr '\n' ' ')"
if [[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$stamp" && -f "$out/disk.qcow2" ]]; then
  exit 0
fi
echo "test-guest: building into $out"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download writes into the current directory as the _apt user when it can.
chmod 0777 "$work"
apt-get download -qq "$kernel_pkg" busybox-static 2>/dev/null
dpkg-deb -x "$kernel_pkg"_*.deb kernel
dpkg-deb -x busybox-static_*.deb busybox

kver=$(ls kernel/lib/modules)
moddir="kernel/lib/modules/$kver/kernel"

# Modules the guest needs, with what they depend on, dependencies first:
# virtio disks and NICs, the config drive (IDE CD-ROM, ISO 9660: the cloud
# kernel has no AHCI, so guests use the i440fx machine), the
# ACPI power button (a clean shutdown) and evdev (acpid reads it).
wanted=(virtio_pci virtio_blk virtio_net ata_piix sr_mod isofs button evdev)
declare -A path_of=()
while IFS= read -r ko; do
  name=$(basename "$ko" .ko)
  path_of[${name//-/_}]="$ko"
done < <(find "$moddir" -name '*.ko')
declare -A loaded=()
order=()
add_module() {
  local name=${1//-/_}
  [[ -n "${loaded[$name]:-}" ]] && return
  local ko=${path_of[$name]:-}
  if [[ -z "$ko" ]]; then
    # Built into the kernel: nothing to load.
    grep -q "/$1.ko\$\|/${1//_/-}.ko\$" "kernel/lib/modules/$kver/modules.builtin" 2>/dev/null && return
    echo "test-guest: module $1 not found" >&2
    exit 1
  fi
  loaded[$name]=1
  local dep
  for dep in $(strings -a "$ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  order+=("$name")
}
for module in "${wanted[@]}"; do add_module "$module"; done

root="$work/initramfs"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt/config,lib/modules,etc/acpi/PWRF,var/log,var/run}
cp busybox/bin/busybox "$root/bin/busybox"
for name in "${order[@]}"; do
  cp "${path_of[$name]}" "$root/lib/modules/$name.ko"
  echo "$name" >>"$root/lib/modules/order"
done
cp "$here/init" "$root/init"
chmod 0755 "$root/init"
(cd "$root" && find . | "$work/busybox/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -9) >"$work/initrd.img"
cp "kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

# A disk that boots by itself: a whole-disk FAT ("superfloppy") whose boot
# sector is SYSLINUX's, holding the kernel and the initramfs.
size_mb=$((($(stat -c %s "$work/vmlinuz") + $(stat -c %s "$work/initrd.img")) / 1048576 + 8))
truncate -s "${size_mb}M" "$work/disk.raw"
mkfs.vfat -n NOVUMGUEST "$work/disk.raw" >/dev/null
syslinux --install "$work/disk.raw"
cat >"$work/syslinux.cfg" <<'EOF'
DEFAULT novum
TIMEOUT 0
PROMPT 0
LABEL novum
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND console=ttyS0 quiet
EOF
mcopy -i "$work/disk.raw" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/
qemu-img convert -q -f raw -O qcow2 "$work/disk.raw" "$work/disk.qcow2"

mv "$work/vmlinuz" "$work/initrd.img" "$work/disk.raw" "$work/disk.qcow2" "$out/"
echo "$stamp" >"$out/stamp"
ls -l "$out"

#!/usr/bin/env bash
# Interactive QEMU launcher behind `./bazelw run //:qemu` (and //:qemu_aarch64).
#
#   ./bazelw run //:qemu                       serial console on this terminal; Ctrl-A X quits
#   ./bazelw run //:qemu -- -m 2G -smp 2       everything after -- goes to QEMU
#   ./bazelw run //:qemu -- --gdb              wait for gdb on localhost:1234 (target remote :1234)
#   FERRITE_CMDLINE="test=all" ./bazelw run //:qemu    replace the kernel command line
#   QEMU_ACCEL=kvm ./bazelw run //:qemu        opt into KVM (fails inside OVMF on some hosts)
#   ./bazelw run //:qemu -- --disk /path/x.img attach a raw image as a modern virtio-blk-pci device
#                                              (a private writable copy; repeat for more disks)
#   ./bazelw run //:qemu_secure_boot           Secure Boot on: the loader signed with Debian's
#                                              snakeoil test key, OVMF's SMM build that trusts it
#
# The disk image and OVMF's variable store are private copies in a temporary directory, removed
# on exit; QEMU's exit status is passed through.
set -euo pipefail

arch="$1"
image_src="$2"
code="$3"
vars_src="$4"
shift 4
# Launcher options (from the BUILD target) up to "--"; everything after it goes to QEMU.
secure_boot=0
while [[ $# -gt 0 && "$1" != "--" ]]; do
  case "$1" in
    --secure-boot) secure_boot=1 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ "${1:-}" == "--" ]] && shift

gdb=()
extra=()
disks=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gdb) gdb=(-s -S) ;;
    --disk)
      [[ $# -ge 2 ]] || { echo "run.sh: --disk needs an image" >&2; exit 2; }
      disks+=("$2")
      shift
      ;;
    *) extra+=("$1") ;;
  esac
  shift
done
[[ "${FERRITE_GDB:-0}" == 1 ]] && gdb=(-s -S)

work="$(mktemp -d "${TMPDIR:-/tmp}/ferrite-qemu.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$image_src" "$work/disk.img"
chmod u+w "$work/disk.img"
cp "$vars_src" "$work/vars.fd"
chmod u+w "$work/vars.fd"

if [[ -n "${FERRITE_CMDLINE:-}" ]]; then
  printf '%s\n' "$FERRITE_CMDLINE" >"$work/cmdline.txt"
  MTOOLS_SKIP_CHECK=1 mcopy -o -i "$work/disk.img@@1048576" "$work/cmdline.txt" ::/ferrite/cmdline.txt
fi

# Extra raw disks: virtio-blk-pci, modern only (1af4:1042), each a writable copy.
disk_args=()
for i in "${!disks[@]}"; do
  cp "${disks[$i]}" "$work/extra$i.img"
  chmod u+w "$work/extra$i.img"
  disk_args+=(-drive "if=none,id=d$i,file=$work/extra$i.img,format=raw" -device "virtio-blk-pci,drive=d$i,disable-legacy=on")
done

accel="${QEMU_ACCEL:-tcg}"
case "$arch" in
  x86_64)
    machine=(-machine q35)
    # OVMF's Secure Boot build keeps its variables in SMM: without SMM and a secure flash, a
    # guest could rewrite the key databases.
    ((secure_boot)) && machine=(-machine "q35,smm=on" -global "driver=cfi.pflash01,property=secure,value=on")
    qemu=(qemu-system-x86_64 "${machine[@]}" -accel "$accel" -cpu max -m 512M
      -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
      -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd"
      -drive "format=raw,file=$work/disk.img"
      -device isa-debug-exit,iobase=0xf4,iosize=0x04)
    ;;
  aarch64)
    ((secure_boot)) && { echo "run.sh: --secure-boot is x86_64 only" >&2; exit 2; }
    qemu=(qemu-system-aarch64 -machine virt -accel "$accel" -cpu cortex-a72 -m 1G
      -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
      -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd"
      -drive "if=none,format=raw,id=disk,file=$work/disk.img" -device virtio-blk-device,drive=disk)
    ;;
  *) echo "run.sh: unknown architecture $arch" >&2; exit 2 ;;
esac

echo "ferrite: booting $arch under QEMU ($accel); Ctrl-A X quits, Ctrl-A C opens the QEMU monitor" >&2
[[ ${#gdb[@]} -gt 0 ]] && echo "ferrite: waiting for gdb: gdb -ex 'target remote :1234'" >&2
set +e
"${qemu[@]}" -nographic -no-reboot -net none "${disk_args[@]}" "${gdb[@]}" "${extra[@]}"
status=$?
set -e
exit "$status"

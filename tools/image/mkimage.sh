#!/usr/bin/env bash
# Builds a GPT disk image with one FAT32 EFI system partition, without root or loop devices
# (sgdisk + mtools). Usage:
#   mkimage.sh OUT.img SIZE_MIB  SRC=ESP_PATH [SRC=ESP_PATH ...]
# ESP_PATH is an absolute path inside the partition, e.g. /EFI/BOOT/BOOTX64.EFI.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # sgdisk lives in /usr/sbin
out="$1"
size_mib="$2"
shift 2

(( size_mib >= 40 )) || { echo "mkimage: FAT32 needs at least 40 MiB, got ${size_mib}" >&2; exit 2; }
rm -f "$out"
truncate -s "${size_mib}M" "$out"
# Partition 1: from sector 2048 (1 MiB) to the end, type EF00 (EFI system partition).
sgdisk --clear --new=1:2048:0 --typecode=1:ef00 --change-name=1:"EFI System" "$out" >/dev/null
first=$(sgdisk -i 1 "$out" | awk '/First sector/ {print $3}')
last=$(sgdisk -i 1 "$out" | awk '/Last sector/ {print $3}')
sectors=$((last - first + 1))
offset=$((first * 512))
export MTOOLS_SKIP_CHECK=1
# -T: the filesystem's size in sectors; without it mformat runs to the end of the file and
# overwrites the backup GPT.
mformat -i "$out@@$offset" -F -T "$sectors" -v FERRITE ::

made_dirs=" "
for spec in "$@"; do
  src="${spec%%=*}"
  dst="${spec#*=}"
  [[ -f "$src" ]] || { echo "mkimage: no such file: $src" >&2; exit 2; }
  dir="$(dirname "$dst")"
  path=""
  IFS=/ read -ra parts <<<"${dir#/}"
  for p in "${parts[@]}"; do
    [[ -n "$p" ]] || continue
    path="$path/$p"
    if [[ "$made_dirs" != *" $path "* ]]; then
      mmd -i "$out@@$offset" "::$path"
      made_dirs="$made_dirs$path "
    fi
  done
  mcopy -i "$out@@$offset" "$src" "::$dst"
done
sgdisk --verify "$out" >/dev/null

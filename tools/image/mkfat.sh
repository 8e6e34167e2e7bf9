#!/usr/bin/env bash
# Builds a FAT32 "superfloppy" data disk (no partition table: the BPB is sector 0) without root or
# loop devices (mkfs.fat + mtools), and a manifest of its files' SHA-256 digests. Usage:
#   mkfat.sh OUT.img OUT.sha256 SIZE_MIB VOLUME_ID LABEL  SRC=DISK_PATH [SRC=DISK_PATH ...]
#   mkfat.sh OUT.img OUT.sha256 SIZE_MIB VOLUME_ID LABEL  --pattern=BYTES=DISK_PATH ...
# DISK_PATH is absolute inside the volume ("/docs/a.txt"); directories are made as needed.
# --pattern=N writes N bytes of the deterministic test pattern (u32 little-endian words
# i * 2654435761 mod 2^32 for word index i, cut at N bytes); --zeros=N writes N zero bytes.
# Deterministic: fixed volume id, mkfs.fat --invariant, every file and directory stamped with
# SOURCE_DATE_EPOCH (default 2020-01-01), files added in sorted order of DISK_PATH.
# The manifest has one line per file, sorted: "<sha256>  /DISK_PATH" (host digests).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # mkfs.fat lives in /usr/sbin
out="$1"
manifest="$2"
size_mib="$3"
volume_id="$4"
label="$5"
shift 5

(( size_mib >= 33 )) || { echo "mkfat: FAT32 needs at least 33 MiB, got ${size_mib}" >&2; exit 2; }
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1577836800}"
export TZ=UTC
export MTOOLS_SKIP_CHECK=1
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# Stage every file (copies stamped with the fixed time: mcopy -m keeps it) under its disk path.
specs=()
for spec in "$@"; do
  src="${spec%=*}"
  dst="${spec##*=}"
  [[ "$dst" == /* ]] || { echo "mkfat: disk path must be absolute: $dst" >&2; exit 2; }
  mkdir -p "$stage/root$(dirname "$dst")"
  case "$src" in
    --pattern=*)
      python3 -c '
import sys
n = int(sys.argv[1])
words = (n + 3) // 4
data = b"".join(((i * 2654435761) & 0xFFFFFFFF).to_bytes(4, "little") for i in range(words))
sys.stdout.buffer.write(data[:n])' "${src#--pattern=}" >"$stage/root$dst"
      ;;
    --zeros=*) truncate -s "${src#--zeros=}" "$stage/root$dst" ;;
    *)
      [[ -f "$src" ]] || { echo "mkfat: no such file: $src" >&2; exit 2; }
      cp "$src" "$stage/root$dst"
      ;;
  esac
  specs+=("$dst")
done
mapfile -t sorted < <(printf '%s\n' "${specs[@]}" | LC_ALL=C sort)
touch -d "@$SOURCE_DATE_EPOCH" "$stage/root"
find "$stage/root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

rm -f "$out"
truncate -s "${size_mib}M" "$out"
# --invariant fixes the times mkfs.fat would take from the clock (the label's directory entry) and
# the volume id, which is then set to ours in the boot sector and its backup (sector 6): offset 67.
mkfs.fat -F 32 -n "$label" --invariant "$out" >/dev/null
python3 - "$out" "$volume_id" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    for sector in (0, 6):
        f.seek(sector * 512 + 67)
        f.write(struct.pack("<I", int(sys.argv[2], 16)))
PY

made_dirs=" "
: >"$manifest"
for dst in "${sorted[@]}"; do
  path=""
  IFS=/ read -ra parts <<<"$(dirname "${dst#/}")"
  for p in "${parts[@]}"; do
    [[ -n "$p" && "$p" != "." ]] || continue
    path="$path/$p"
    if [[ "$made_dirs" != *" $path "* ]]; then
      mmd -i "$out" "::$path"
      made_dirs="$made_dirs$path "
    fi
  done
  mcopy -m -i "$out" "$stage/root$dst" "::$dst"
  printf '%s  %s\n' "$(sha256sum <"$stage/root$dst" | cut -d' ' -f1)" "$dst" >>"$manifest"
done
# The volume must check clean.
fsck.fat -n "$out" >/dev/null

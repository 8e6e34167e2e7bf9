#!/usr/bin/env bash
# Boot time of Ferrite against a bare hello-world EFI application, booted the same way.
#
#   tools/boot_time.sh [RUNS]        (default 5 runs of each, alternating)
#
# Both images boot under QEMU + OVMF (TCG, q35, 512 MiB, -cpu max) through testing/qemu/boot_test.py,
# which reports the wall time from starting QEMU to a line on the serial console (polled every
# 20 ms): the kernel's "ready" for //:image (its command line set to log=info), "hello from a bare
# EFI application" for //:image_hello. The firmware dominates both; the ratio of the medians says
# what the loader (reading, hashing and loading the kernel, page tables, ExitBootServices) and
# the kernel's start add on top of it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${1:-5}"

./bazelw build //:image //:image_hello >&2
bin="$(./bazelw info bazel-bin 2>/dev/null)"
code=/usr/share/OVMF/OVMF_CODE_4M.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.fd
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

boot() {  # image until [extra args] -> seconds
  local image="$1" until="$2"
  shift 2
  TEST_TMPDIR="$work" python3 testing/qemu/boot_test.py --arch x86_64 --image "$image" --code "$code" \
    --vars "$vars" --memory 512M --until "$until" --timeout 120 "$@" >"$work/out.txt" 2>&1 ||
    { cat "$work/out.txt" >&2; echo "boot_time: boot of $image failed" >&2; exit 1; }
  sed -n 's/^PASS (\([0-9.]*\) s.*/\1/p' "$work/out.txt"
}

ferrite=()
hello=()
for ((i = 0; i < runs; i++)); do
  hello+=("$(boot "$bin/image_hello.img" "hello from a bare EFI application")")
  ferrite+=("$(boot "$bin/image.img" '\]\s+ready$' --cmdline log=info)")
  echo "run $((i + 1))/$runs: hello ${hello[-1]} s, ferrite ${ferrite[-1]} s" >&2
done

python3 - "${#hello[@]}" "${hello[@]}" "${ferrite[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
hello = [float(x) for x in sys.argv[2:2 + n]]
ferrite = [float(x) for x in sys.argv[2 + n:]]
h, f = statistics.median(hello), statistics.median(ferrite)
print("hello-world EFI: median %.2f s (min %.2f, max %.2f) over %d boots" % (h, min(hello), max(hello), n))
print("ferrite (ready): median %.2f s (min %.2f, max %.2f) over %d boots" % (f, min(ferrite), max(ferrite), n))
print("ratio ferrite / hello-world: %.2f (ferrite adds %.2f s)" % (f / h, f - h))
PY

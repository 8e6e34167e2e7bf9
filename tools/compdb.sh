#!/usr/bin/env bash
# compile_commands.json at the workspace root, for clangd and other clang tools.
#
#   ./bazelw run //tools:compdb [-- [--no-build] [--all-configurations] [BAZEL_FLAGS...]]
#   tools/compdb.sh [--no-build] [--all-configurations] [BAZEL_FLAGS...]     (the same, by hand)
#
# 1. `bazel aquery` lists the CppCompile and CppModulePrecompile actions of everything //...
#    builds, in every configuration its transitions reach (host, sanitizers, fuzzers, kernel,
#    UEFI); tools/compdb.py turns them into entries with the actions' exact arguments, including
#    every -fmodule-file=NAME=.../NAME.pcm; "directory" is the workspace, and bazel-out/ and
#    external/ paths are made absolute (see compdb.py for why not the execution root).
# 2. Unless --no-build: `bazel build --output_groups=pcm //...` precompiles the host configuration's
#    module interfaces, so the -fmodule-file= paths of host entries exist. The pcm files of other
#    configurations (kernel, UEFI) exist once `./bazelw build //...` or `test //...` has run.
# BAZEL_FLAGS (e.g. --jobs=2, -c opt, --config=kernel) go to aquery and build alike, so the paths
# in the database are the ones that build writes. See tools/README.md, "Compilation database".
set -euo pipefail
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
ws="${BUILD_WORKSPACE_DIRECTORY:-$(dirname "$here")}"
cd "$ws"
[[ -x ./bazelw ]] || { echo "compdb: $ws has no bazelw" >&2; exit 2; }

build=1
all=()
flags=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --all-configurations) all=(--all-configurations) ;;
    *) flags+=("$arg") ;;
  esac
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
out="$ws/compile_commands.json"

info() {
  ./bazelw info "${flags[@]}" "$1" 2>"$tmp/info.err" || {
    cat "$tmp/info.err" >&2
    exit 1
  }
}
execroot="$(info execution_root)"
output_base="$(info output_base)"
echo "compdb: bazel aquery (execution root $execroot)" >&2
./bazelw aquery "${flags[@]}" --output=jsonproto \
  'mnemonic("CppCompile|CppModulePrecompile", deps(//...))' >"$tmp/aquery.json"
convert() {
  python3 "$here/compdb.py" "$tmp/aquery.json" "$execroot" "$output_base" "$ws" "$out" "${all[@]}" >"$tmp/missing"
}
convert

if ((build)) && [[ -s "$tmp/missing" ]]; then
  echo "compdb: precompiling the host configuration's modules (bazel build --output_groups=pcm //...)" >&2
  ./bazelw build "${flags[@]}" --keep_going --output_groups=pcm //... || true
  convert
fi
if [[ -s "$tmp/missing" ]]; then
  echo "compdb: $(wc -l <"$tmp/missing") referenced pcm files are not built yet (e.g. $(head -1 "$tmp/missing"));" \
    "./bazelw build ${flags[*]} //... builds them (other configurations: kernel, UEFI, sanitizers)" >&2
fi
echo "compdb: wrote $out" >&2

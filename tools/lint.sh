#!/usr/bin/env bash
# Formatting and lint checks: buildifier for Starlark, clang-format-19 for C++.
#   tools/lint.sh          check (exit 1 if anything needs reformatting)
#   tools/lint.sh --fix    rewrite files in place
# buildifier comes from npm (tools/package.json, prebuilt binaries inside the package; the npm
# registry is the only network access needed, once). clang-format-19 is installed by ./bazelw.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fix=0
[[ "${1:-}" == "--fix" ]] && fix=1

if [[ ! -x tools/node_modules/.bin/buildifier ]]; then
  echo "lint: installing buildifier from npm (tools/package-lock.json)" >&2
  npm ci --prefix tools --no-audit --no-fund >&2
fi
buildifier=tools/node_modules/.bin/buildifier
clang_format=/usr/lib/llvm-19/bin/clang-format
[[ -x "$clang_format" ]] || { echo "lint: $clang_format missing: run ./bazelw once (it installs clang-format-19)" >&2; exit 2; }

mapfile -t starlark < <(git ls-files 'WORKSPACE' '*BUILD' '*.bzl' '*.BUILD')
mapfile -t cxx < <(git ls-files '*.cc' '*.cppm' '*.h' | grep -v '^tools/shims/')

status=0
if ((fix)); then
  "$buildifier" --lint=fix "${starlark[@]}"
  "$clang_format" -i "${cxx[@]}"
else
  "$buildifier" --mode=check --lint=warn "${starlark[@]}" || status=1
  "$clang_format" --dry-run --Werror "${cxx[@]}" || status=1
fi
exit "$status"

#!/usr/bin/env bash
# Formatting and lint checks: buildifier for Starlark, clang-format-19 for C++, and the unsafe-code
# rule (tools/unsafe_lint.py: reinterpret_cast and Span::from_raw only inside marked unsafe regions,
# -Wunsafe-buffer-usage off only for test-only targets) and the module rule (tools/inline_lint.py:
# members defined in a class of a .cppm say `inline`). --fix cannot fix the unsafe-code rule.
#   tools/lint.sh          check (exit 1 if anything needs reformatting)
#   tools/lint.sh --fix    rewrite files in place
#   bazel test //tools:lint_test   the same check, as part of `./bazelw test //...`
# buildifier comes from npm (tools/package.json, prebuilt binaries inside the package; the npm
# registry is the only network access needed, once); ./bazelw runs `npm ci --prefix tools` when
# tools/node_modules is missing or older than tools/package-lock.json. clang-format-19 is
# installed by ./bazelw. Buildifier's warnings are configured in /.buildifier.json.
#
# Which files: everything git tracks plus untracked files git does not ignore (a new file is
# checked before it is added), minus tools/shims/ for C++. Outside a git checkout (a source
# tarball) the same patterns are found with `find`.
#
# As a Bazel test (//tools:lint_test runs this file; tags "local" and "external" in tools/BUILD):
# the runfiles entry of this script is a symlink to the source file, so resolving it with
# `readlink -f` leads back to the workspace, which is checked in place. The test is not sandboxed
# and never cached, because its inputs (every source file) are not declared to Bazel.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$root"
fix=0
case "${1:-}" in
  --fix) fix=1 ;;
  "") ;;
  *) echo "usage: tools/lint.sh [--fix]" >&2; exit 2 ;;
esac
in_test=0
[[ -n "${TEST_SRCDIR:-}" ]] && in_test=1
[[ -f WORKSPACE && -f tools/lint.sh ]] || { echo "lint: $root is not the Ferrite workspace" >&2; exit 2; }

buildifier=tools/node_modules/.bin/buildifier
if [[ ! -x "$buildifier" ]]; then
  if ((in_test)); then
    echo "lint: $root/$buildifier missing: run ./bazelw (it runs npm ci --prefix tools)" >&2
    exit 2
  fi
  echo "lint: installing buildifier from npm (tools/package-lock.json)" >&2
  npm ci --prefix tools --no-audit --no-fund >&2
fi
clang_format=/usr/lib/llvm-19/bin/clang-format
[[ -x "$clang_format" ]] || { echo "lint: $clang_format missing: run ./bazelw once (it installs clang-format-19)" >&2; exit 2; }

# list_files PATTERN...: paths relative to the root, one per line, existing files only.
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- "$@"
  else
    local -a names=()
    local p
    for p in "$@"; do names+=(-o -name "$p"); done
    find . \( -path ./tools/node_modules -o -path './bazel-*' -o -path ./.git \) -prune -o \
      -type f \( "${names[@]:1}" \) -print | sed 's|^\./||'
  fi | sort -u | while IFS= read -r f; do if [[ -f "$f" ]]; then printf "%s\n" "$f"; fi; done
}

mapfile -t starlark < <(list_files '*WORKSPACE' '*BUILD' '*.bzl' '*.BUILD')
mapfile -t cxx < <(list_files '*.cc' '*.cppm' '*.h' | grep -v '^tools/shims/')
((${#starlark[@]} > 0 && ${#cxx[@]} > 0)) || { echo "lint: found no files to check in $root" >&2; exit 2; }

status=0
if ((fix)); then
  "$buildifier" --lint=fix "${starlark[@]}"
  python3 tools/inline_lint.py --fix "${cxx[@]}"
  "$clang_format" -i "${cxx[@]}"
else
  "$buildifier" --mode=check --lint=warn "${starlark[@]}" || status=1
  "$clang_format" --dry-run --Werror "${cxx[@]}" || status=1
  # The checker's own test data holds findings on purpose (//tools:unsafe_lint_test checks them).
  mapfile -t checked < <(printf "%s\n" "${cxx[@]}" "${starlark[@]}" | grep -v '^tools/testdata/unsafe_lint/')
  python3 tools/unsafe_lint.py "${checked[@]}" || status=1
  python3 tools/inline_lint.py "${cxx[@]}" || status=1
  if ((status)); then
    echo "lint: checked ${#starlark[@]} Starlark and ${#cxx[@]} C++ files in $root: reformat with tools/lint.sh --fix; mark or rewrite what unsafe_lint lists (inline_lint's findings --fix adds)" >&2
  else
    echo "lint: ${#starlark[@]} Starlark and ${#cxx[@]} C++ files in $root are formatted"
  fi
fi
exit "$status"

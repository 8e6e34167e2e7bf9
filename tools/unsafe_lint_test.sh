#!/usr/bin/env bash
# //tools:unsafe_lint_test: tools/unsafe_lint.py accepts tools/testdata/unsafe_lint/good.* and
# reports exactly bad.expected for bad.* (every kind of finding, on its line).
set -euo pipefail
cd "${TEST_SRCDIR:?}/${TEST_WORKSPACE:?}"
lint=tools/unsafe_lint.py
data=tools/testdata/unsafe_lint
python3 "$lint" "$data/good.cc" "$data/good.BUILD" || { echo "FAIL: good.* rejected" >&2; exit 1; }
set +e
python3 "$lint" "$data/bad.cc" "$data/bad.BUILD" >"${TEST_TMPDIR:?}/bad.out" 2>/dev/null
rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "FAIL: bad.* gave exit status $rc, expected 1" >&2; exit 1; }
diff -u "$data/bad.expected" "$TEST_TMPDIR/bad.out" || { echo "FAIL: findings differ (above)" >&2; exit 1; }
echo "PASS: good.* accepted; bad.* gave the $(wc -l <"$data/bad.expected") expected findings"

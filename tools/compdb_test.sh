#!/usr/bin/env bash
# tools/compdb.py over a recorded aquery (tools/testdata/aquery_pmm.json: Bazel 4.2.3's jsonproto
# for mm/pmm and mm/base/addr in the host and the ASan configuration, ASan listed first, with the
# CppModuleCodegen actions): one entry per source, the host one, with its -fmodule-file= flags;
# the interfaces' precompile actions are entries, codegen is not; missing pcm files are listed.
set -euo pipefail
here="$TEST_SRCDIR/$TEST_WORKSPACE/tools"
ws="$TEST_TMPDIR/ws"
execroot="$TEST_TMPDIR/execroot"
mkdir -p "$ws/mm/pmm" "$ws/mm/base" "$execroot/bazel-out/k8-fastbuild/bin/mm/base/_pcm/addr"
touch "$ws/mm/pmm/pmm.cc" "$ws/mm/pmm/pmm.cppm" "$ws/mm/base/addr.cppm"
touch "$execroot/bazel-out/k8-fastbuild/bin/mm/base/_pcm/addr/mm.addr.pcm"

python3 "$here/compdb.py" "$here/testdata/aquery_pmm.json" "$execroot" "$ws" "$TEST_TMPDIR/one.json" >"$TEST_TMPDIR/missing"
python3 "$here/compdb.py" "$here/testdata/aquery_pmm.json" "$execroot" "$ws" "$TEST_TMPDIR/all.json" \
  --all-configurations >/dev/null
python3 - "$TEST_TMPDIR" "$ws" "$execroot" <<'PY'
import json, sys
tmp, ws, execroot = sys.argv[1:]
failures = []
def check(cond, what):
    if not cond:
        failures.append(what)

one = json.load(open(tmp + "/one.json"))
by_file = {e["file"]: e for e in one}
want = {ws + "/mm/pmm/pmm.cc", ws + "/mm/pmm/pmm.cppm", ws + "/mm/base/addr.cppm"}
check(set(by_file) == want and len(one) == 3, "one entry per source, no pcm sources: %s" % sorted(by_file))
pmm = by_file.get(ws + "/mm/pmm/pmm.cc", {"arguments": [], "directory": ""})
args = pmm["arguments"]
check(pmm["directory"] == execroot, "directory is the execution root")
check(not any(a.startswith("-fsanitize") for a in args), "the host entry is preferred to the ASan one")
for flag in ("-fmodule-file=mm.pmm=bazel-out/k8-fastbuild/bin/mm/pmm/_pcm/pmm/mm.pmm.pcm",
             "-fmodule-file=mm.addr=bazel-out/k8-fastbuild/bin/mm/base/_pcm/addr/mm.addr.pcm",
             "-fmodule-file=ktl.result=bazel-out/k8-fastbuild/bin/kernel/lib/_pcm/result/ktl.result.pcm"):
    check(flag in args, "pmm.cc has " + flag)
check("-c" in args and args[args.index("-c") + 1] == ws + "/mm/pmm/pmm.cc", "the source argument is the workspace path")
check(args[:1] == ["/usr/lib/llvm-19/bin/clang"], "the compiler is the toolchain's clang")
iface = by_file.get(ws + "/mm/pmm/pmm.cppm", {"arguments": []})["arguments"]
check("--precompile" in iface and "c++-module" in iface, "pmm.cppm is its precompile action")

every = json.load(open(tmp + "/all.json"))
check(len(every) == 6, "--all-configurations: 3 sources x 2 configurations, got %d" % len(every))

missing = open(tmp + "/missing").read().split()
check("bazel-out/k8-fastbuild/bin/mm/pmm/_pcm/pmm/mm.pmm.pcm" in missing, "mm.pmm.pcm is reported missing")
check(not any(m.endswith("/mm.addr.pcm") for m in missing), "the existing mm.addr.pcm is not reported")

for f in failures:
    print("FAIL:", f)
print("%d checks failed" % len(failures) if failures else "compdb: all checks passed")
sys.exit(1 if failures else 0)
PY

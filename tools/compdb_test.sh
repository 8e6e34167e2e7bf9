#!/usr/bin/env bash
# tools/compdb.py over a recorded aquery (tools/testdata/aquery_pmm.json: Bazel 4.2.3's jsonproto
# for mm/pmm and mm/base/addr in the host and the ASan configuration, ASan listed first, with the
# CppModuleCodegen actions): one entry per source, the host one, with its -fmodule-file= flags;
# the interfaces' precompile actions are entries, codegen is not; bazel-out/ and external/ paths
# become absolute (directory is the workspace); missing pcm files are listed.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
here="$TEST_SRCDIR/$TEST_WORKSPACE/tools"
ws="$TEST_TMPDIR/ws"
execroot="$TEST_TMPDIR/execroot"
output_base="$TEST_TMPDIR/output_base"
mkdir -p "$ws/mm/pmm" "$ws/mm/base" "$execroot/bazel-out/k8-fastbuild/bin/mm/base/_pcm/addr"
touch "$ws/mm/pmm/pmm.cc" "$ws/mm/pmm/pmm.cppm" "$ws/mm/base/addr.cppm"
touch "$execroot/bazel-out/k8-fastbuild/bin/mm/base/_pcm/addr/mm.addr.pcm"

python3 "$here/compdb.py" "$here/testdata/aquery_pmm.json" "$execroot" "$output_base" "$ws" "$TEST_TMPDIR/one.json" >"$TEST_TMPDIR/missing"
python3 "$here/compdb.py" "$here/testdata/aquery_pmm.json" "$execroot" "$output_base" "$ws" "$TEST_TMPDIR/all.json" \
  --all-configurations >/dev/null
python3 - "$TEST_TMPDIR" "$ws" "$execroot" "$here" <<'PY'
import json, sys
tmp, ws, execroot, here = sys.argv[1:]
sys.path.insert(0, here)
import compdb
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
check(pmm["directory"] == ws, "directory is the workspace")
check(not any(a.startswith("-fsanitize") for a in args), "the host entry is preferred to the ASan one")
bin = execroot + "/bazel-out/k8-fastbuild/bin"
for flag in ("-fmodule-file=mm.pmm=%s/mm/pmm/_pcm/pmm/mm.pmm.pcm" % bin,
             "-fmodule-file=mm.addr=%s/mm/base/_pcm/addr/mm.addr.pcm" % bin,
             "-fmodule-file=ktl.result=%s/kernel/lib/_pcm/result/ktl.result.pcm" % bin,
             "-isystem", "kernel/lib/include", "-iquote", "."):
    check(flag in args, "pmm.cc has " + flag)
check(pmm.get("output") == bin + "/mm/pmm/_objs/pmm/pmm.o", "output is absolute: %s" % pmm.get("output"))
check(not any(a.startswith(("bazel-out/", "external/")) or "=bazel-out/" in a for a in args),
      "no path relative to the execution root is left")
for arg, want in (("external/gtest/include", "/ob/external/gtest/include"),
                  ("-isystemexternal/gtest", "-isystem/ob/external/gtest"),
                  ("-Ibazel-out/k8/bin", "-I/er/bazel-out/k8/bin"),
                  ("-fmodule-file=a.b=bazel-out/x.pcm", "-fmodule-file=a.b=/er/bazel-out/x.pcm"),
                  ("-D__DATE__=\"redacted\"", "-D__DATE__=\"redacted\""),
                  ("mm/pmm/pmm.cc", "mm/pmm/pmm.cc")):
    got = compdb.absolutize(arg, "/er", "/ob")
    check(got == want, "absolutize(%r) = %r, want %r" % (arg, got, want))
check("-c" in args and args[args.index("-c") + 1] == ws + "/mm/pmm/pmm.cc", "the source argument is the workspace path")
check(args[:1] == ["/usr/lib/llvm-19/bin/clang"], "the compiler is the toolchain's clang")
iface = by_file.get(ws + "/mm/pmm/pmm.cppm", {"arguments": []})["arguments"]
check("--precompile" in iface and "c++-module" in iface, "pmm.cppm is its precompile action")

every = json.load(open(tmp + "/all.json"))
check(len(every) == 6, "--all-configurations: 3 sources x 2 configurations, got %d" % len(every))

missing = open(tmp + "/missing").read().split()
check(bin + "/mm/pmm/_pcm/pmm/mm.pmm.pcm" in missing, "mm.pmm.pcm is reported missing")
check(not any(m.endswith("/mm.addr.pcm") for m in missing), "the existing mm.addr.pcm is not reported")

for f in failures:
    print("FAIL:", f)
print("%d checks failed" % len(failures) if failures else "compdb: all checks passed")
sys.exit(1 if failures else 0)
PY

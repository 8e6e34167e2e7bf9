#!/usr/bin/env python3
"""Converts `bazel aquery --output=jsonproto` into a clang compilation database.

    compdb.py AQUERY_JSON EXECUTION_ROOT OUTPUT_BASE WORKSPACE OUTPUT [--all-configurations]

Input: the CppCompile actions (ordinary sources, implementation units of cc_module) and the
CppModulePrecompile actions (cc_module interfaces, .cppm -> .pcm) of tools/compdb.sh's aquery.
CppModuleCodegen (.pcm -> .o) has no source file and is not an entry.

Each entry keeps the action's exact arguments (including every -fmodule-file=NAME=path.pcm).
"directory" is the workspace and "file" the source's path in it, which is what an editor opens.
The execution root is not used as the directory: Bazel re-plants its symlinks to the source tree
on every command, only for the packages that command loaded, so a later `bazel test //tools:x`
would leave `mm/` unresolvable. Instead the paths Bazel resolves from the execution root are made
absolute: bazel-out/... -> EXECUTION_ROOT/bazel-out/... (Bazel's output tree, not re-planted) and
external/... -> OUTPUT_BASE/external/... (the fetched repositories themselves). Source paths
(mm/..., kernel/lib/include, ".") are the same from the workspace.

A file compiled in several configurations (host, ASan, TSan, fuzzer, kernel, UEFI, aarch64, opt)
gets one entry unless --all-configurations: the first of plain host, x86_64 kernel, x86_64 UEFI,
aarch64 kernel, aarch64 UEFI, then the sanitizer and opt builds. The pcm files of the chosen
entries that do not exist yet are printed on stdout, one per line (for compdb.sh).
"""

import json
import os
import sys

TRIPLES = [
    "x86_64-linux-gnu",
    "x86_64-unknown-none-elf",
    "x86_64-unknown-windows",
    "aarch64-unknown-none-elf",
    "aarch64-unknown-windows",
]
MNEMONICS = ("CppCompile", "CppModulePrecompile")


def absolutize(arg, execroot, output_base):
    """bazel-out/ and external/ at the start of an argument, after '=' or after -I/-iquote/-isystem."""
    roots = (("bazel-out/", execroot + "/bazel-out/"), ("external/", output_base + "/external/"))
    head, tail = "", arg
    if "=" in arg:
        head, tail = arg[: arg.rindex("=") + 1], arg[arg.rindex("=") + 1 :]
    else:
        for flag in ("-isystem", "-iquote", "-idirafter", "-I"):
            if arg.startswith(flag) and arg != flag:
                head, tail = flag, arg[len(flag) :]
                break
    for rel, absolute in roots:
        if tail.startswith(rel):
            return head + absolute + tail[len(rel) :]
    return arg


def source_of(args):
    """The argument after -c and its index (our toolchains always compile with -c SRC)."""
    for i, arg in enumerate(args[:-1]):
        if arg == "-c":
            return i + 1, args[i + 1]
    return None, None


def rank(action, config_mnemonic):
    args = action["arguments"]
    triple = next((a.split("=", 1)[1] for a in args if a.startswith("--target=")), "")
    sanitized = any(a.startswith("-fsanitize") for a in args)
    return (
        sanitized,
        "-opt" in config_mnemonic,
        TRIPLES.index(triple) if triple in TRIPLES else len(TRIPLES),
        config_mnemonic,
        action["mnemonic"] != "CppModulePrecompile",
    )


def main(argv):
    if len(argv) not in (6, 7) or (len(argv) == 7 and argv[6] != "--all-configurations"):
        sys.exit(__doc__)
    aquery_json, execroot, output_base, workspace, output = argv[1:6]
    all_configs = len(argv) == 7
    with open(aquery_json) as f:
        aquery = json.load(f)
    configs = {c["id"]: c["mnemonic"] for c in aquery.get("configuration", [])}

    candidates = {}  # source path -> [(rank, action)]
    for action in aquery.get("actions", []):
        if action.get("mnemonic") not in MNEMONICS:
            continue
        _, src = source_of(action["arguments"])
        if src is None or src.startswith(("external/", "bazel-out/", "/")):
            continue  # third-party or generated code: not ours to edit
        if not os.path.isfile(os.path.join(workspace, src)):
            continue
        r = rank(action, configs.get(action.get("configurationId"), ""))
        candidates.setdefault(src, []).append((r, action))

    entries = []
    needed_pcms = set()
    for src in sorted(candidates):
        chosen = sorted(candidates[src], key=lambda c: c[0])
        if not all_configs:
            chosen = chosen[:1]
        for _, action in chosen:
            args = [absolutize(a, execroot, output_base) for a in action["arguments"]]
            i, _ = source_of(args)
            args[i] = os.path.join(workspace, src)
            entry = {"directory": workspace, "file": os.path.join(workspace, src), "arguments": args}
            if "-o" in args[:-1]:
                entry["output"] = args[args.index("-o") + 1]
            entries.append(entry)
            for a in args:
                if a.startswith("-fmodule-file=") and "=" in a[len("-fmodule-file=") :]:
                    needed_pcms.add(a.split("=", 2)[2])

    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    os.replace(tmp, output)
    missing = sorted(p for p in needed_pcms if not os.path.exists(p))
    sys.stdout.writelines(p + "\n" for p in missing)
    n_files = len({e["file"] for e in entries})
    n_mod = sum(1 for e in entries if any(a == "--precompile" for a in e["arguments"]))
    print(
        "compdb: %s: %d entries for %d files (%d module interfaces), %d pcm files referenced, %d not built yet"
        % (output, len(entries), n_files, n_mod, len(needed_pcms), len(missing)),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(sys.argv)

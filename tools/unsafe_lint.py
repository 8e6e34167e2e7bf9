#!/usr/bin/env python3
"""Counts unsafe code outside marked regions; run by tools/lint.sh (and so by //tools:lint_test).

Usage: tools/unsafe_lint.py [--list] FILE...   (C++ sources, BUILD files; others are ignored)

Rules (docs/CONVENTIONS.md, "Unsafe code"):
  C++    `reinterpret_cast` and `from_raw(` (ktl::Span::from_raw) appear only between
         KTL_UNSAFE_BUFFER_BEGIN and KTL_UNSAFE_BUFFER_END. Regions do not nest, end in the file
         they begin in, and every BEGIN carries a `//` comment on its line saying why the code is
         sound. Comments and string literals do not count.
  BUILD  Raw pointer arithmetic is the compiler's to find: -Wunsafe-buffer-usage (the toolchain
         feature `unsafe_buffer_usage`) is on for every package with C++ product code (test support
         under testing/ and third-party BUILD files under tools/third_party/ excepted), and only a
         test-only target (a *_test rule, or testonly = True) may turn it off with
         "-unsafe_buffer_usage".
Prints one line per finding (file:line: what) and exits 1 if there are any; --list prints the
count of regions per file as well.
"""

import ast
import re
import sys

MARK = re.compile(r"\bKTL_UNSAFE_BUFFER_(?:BEGIN|END)\b|#\s*pragma\s+clang\s+unsafe_buffer_usage\s+(?:begin|end)\b"
                  r"|\breinterpret_cast\b|\bfrom_raw\s*\(")
DEFINES = re.compile(r"#\s*define\s+KTL_UNSAFE_BUFFER_")


def blank_literals(text):
    """Returns `text` with comments and string/char literals replaced by spaces (newlines kept),
    plus, per line, whether that line had a `//` comment."""
    out = []
    comment_lines = set()
    i, n, line = 0, len(text), 1

    def skip(j):
        nonlocal line
        chunk = text[i:j]
        line += chunk.count("\n")
        out.append(re.sub(r"[^\n]", " ", chunk))

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            comment_lines.add(line)
            skip(j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            skip(j)
            i = j
        elif c == "R" and text.startswith('R"', i) and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            close = ")" + m.group(1) + '"'
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            skip(j)
            i = j
        elif c == '"' or (c == "'" and not (i > 0 and text[i - 1].isalnum())):  # 1'000 is a number
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            skip(j)
            i = j
        else:
            if c == "\n":
                line += 1
            out.append(c)
            i += 1
    return "".join(out), comment_lines


def check_cxx(path, text, findings, regions):
    code, comment_lines = blank_literals(text)
    open_at = None
    count = 0
    for lineno, line in enumerate(code.split("\n"), 1):
        if DEFINES.search(line):
            continue
        for m in MARK.finditer(line):
            word = m.group(0)
            if word.endswith(("BEGIN", "begin")):
                if open_at is not None:
                    findings.append(f"{path}:{lineno}: unsafe region opened inside the one opened on line {open_at}")
                open_at = lineno
                count += 1
                if lineno not in comment_lines:
                    findings.append(f"{path}:{lineno}: KTL_UNSAFE_BUFFER_BEGIN without a `//` comment saying why it is sound")
            elif word.endswith(("END", "end")):
                if open_at is None:
                    findings.append(f"{path}:{lineno}: KTL_UNSAFE_BUFFER_END without a BEGIN")
                open_at = None
            elif open_at is None:
                what = "reinterpret_cast" if word == "reinterpret_cast" else "Span::from_raw"
                findings.append(f"{path}:{lineno}: {what} outside an unsafe region")
    if open_at is not None:
        findings.append(f"{path}:{open_at}: unsafe region not closed in this file")
    regions[path] = count


NOT_PRODUCT = ("testing/", "tools/third_party/")
CC_KINDS = re.compile(r"(^|_)cc_|^cc_module$|^fuzz_target$")


def string_list(node):
    if isinstance(node, (ast.List, ast.Tuple)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if isinstance(node, ast.BinOp):  # ["a"] + select(...)
        return string_list(node.left) + string_list(node.right)
    return []


def check_build(path, text, findings):
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        findings.append(f"{path}:{e.lineno}: cannot parse as Starlark: {e.msg}")
        return
    package_on = False
    product_cc = []
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
            continue
        call = stmt.value
        kind = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        if kind == "package":
            package_on = "unsafe_buffer_usage" in string_list(kw.get("features"))
            continue
        name = kw["name"].value if isinstance(kw.get("name"), ast.Constant) else "?"
        testonly = kind.endswith("_test") or (
            isinstance(kw.get("testonly"), ast.Constant) and kw["testonly"].value is True)
        if "-unsafe_buffer_usage" in string_list(kw.get("features")) and not testonly:
            findings.append(f"{path}:{call.lineno}: {kind} '{name}' turns -Wunsafe-buffer-usage off but is not test-only")
        if CC_KINDS.search(kind) and not testonly:
            product_cc.append((call.lineno, kind, name))
    if product_cc and not package_on and not path.startswith(NOT_PRODUCT):
        line, kind, name = product_cc[0]
        findings.append(f"{path}:{line}: the package has C++ product code ({kind} '{name}') but its "
                        'package(features = [...]) does not turn on "unsafe_buffer_usage"')


def main(argv):
    list_regions = "--list" in argv
    paths = [a for a in argv if a != "--list"]
    findings, regions = [], {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        base = path.rsplit("/", 1)[-1]
        if base.endswith((".cc", ".cppm", ".h")):
            check_cxx(path, text, findings, regions)
        elif base == "BUILD" or base.endswith(".BUILD"):
            check_build(path, text, findings)
    for line in findings:
        print(line)
    if list_regions:
        for path in sorted(p for p, n in regions.items() if n):
            print(f"{regions[path]:4d} {path}")
    total = sum(regions.values())
    if findings:
        print(f"unsafe_lint: {len(findings)} finding(s); mark the code (KTL_UNSAFE_BUFFER_BEGIN  // why ... "
              "KTL_UNSAFE_BUFFER_END) or use a safe ktl call (docs/CONVENTIONS.md, Unsafe code)", file=sys.stderr)
        return 1
    print(f"unsafe_lint: {total} marked unsafe regions in {sum(1 for n in regions.values() if n)} files, nothing unsafe outside them")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Finds member functions defined inside a class of a module interface (.cppm) without `inline`;
run by tools/lint.sh (and so by //tools:lint_test).

Usage: tools/inline_lint.py [--fix] FILE...   (.cppm files; others are ignored)

Why (docs/CONVENTIONS.md, "Modules"): in a named module a member function defined in its class is
not implicitly inline ([class.mfct]/1 since C++20), and clang 19 follows SG15's advice of not giving
importers the body of a non-inline function. Without `inline`, `window.bytes(p, n)` or a
descriptor's `load_kind()` is an out-of-line call in every other module: it made translate() twice
as slow and put a call into kfree's fast path. Member templates and members of class templates
are instantiated by the importer anyway, but are marked too so that the rule has no exceptions.

The check is line-based (the project's clang-format layout): a line indented 2-6 spaces, optionally
starting with [[nodiscard]], that declares a function (`type name(...)`, a constructor, destructor
or operator) and opens its body on the same line. `constexpr`/`consteval` (implicitly inline),
`static`, `friend`, `template`, statements and macros are left alone. --fix inserts the keyword.
"""

import re
import sys

SKIP = re.compile(r"^(if|for|while|switch|return|case|default|else|do|inline|constexpr|consteval|static|template"
                  r"|friend|using|typedef|virtual|explicit constexpr|requires|//|#|KTL_|TRY|ktl::check|[A-Z_]+\(|\}|\{)")
LINE = re.compile(r"^( {2,6})(\[\[nodiscard\]\] )?(\S.*)$")
ONE_LINER = re.compile(r"\)\s*(const)?\s*(&&|&)?\s*(noexcept)?\s*([A-Z_]+\([^)]*\)\s*)*\{.*\}\s*$")
HEAD = re.compile(r"^(explicit )?[A-Za-z_~][\w:<>,\*& ]*\s*(operator\S*|~?\w+)$")


def needs_inline(line):
    m = LINE.match(line)
    if not m:
        return None
    rest = m.group(3)
    if "(" not in rest or SKIP.match(rest):
        return None
    if not (rest.rstrip().endswith("{") or ONE_LINER.search(rest)):
        return None
    head = rest.split("(")[0].strip()
    if " = " in head or re.search(r"\b(else|return|new|delete)\b", head) or not HEAD.match(head):
        return None
    return m.group(1) + (m.group(2) or "") + "inline " + rest


def self_test():
    cases = {
  "  [[nodiscard]] u64 size() const { return size_; }"
      : True,
        "  PhysWindow(PhysAddr base, u64 size) : base_(base) {}" : True,
                                                                   "  ~Mapping() {"
      : True,
        "  Mapping& operator=(Mapping&& o) {" : True,
                                                "  [[nodiscard]] inline u64 size() const { return size_; }"
      : False,
        "  constexpr u64 size() const { return size_; }" : False,
                                                           "  static u64 count() { return 0; }"
      : False,
        "    if (x) {" : False,
                         "    return f(x) {" : False,
                                               "      EXCLUDES(lock_) {" : False,
                                                                           "  void lock() ACQUIRE();"
      : False,
        "  Pmm() = default;" : False,
    }
    for line, expected in cases.items():
        if (needs_inline(line) is not None) != expected:
            print(f"inline_lint: self-test failed on {line!r}", file=sys.stderr)
            sys.exit(2)


def main(argv):
    self_test()
    fix = "--fix" in argv
    findings = 0
    for path in (a for a in argv if a != "--fix" and a.endswith(".cppm")):
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        changed = False
        for i, line in enumerate(lines):
            fixed = needs_inline(line)
            if fixed is None:
                continue
            if fix:
                lines[i] = fixed
                changed = True
            else:
                print(f"{path}:{i + 1}: member function defined in its class without `inline`")
                findings += 1
        if changed:
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""debian_files: chosen files of installed Debian packages as one external repository.

new_local_repository exposes one directory; Debian's `ovmf` package spreads what the QEMU tests
need over two (the firmware in /usr/share/OVMF, the Secure Boot test key and certificate in
/usr/share/ovmf). This rule symlinks each listed file under its short name and fails with a clear
message when one is missing. Like new_local_repository it is `local = True` (re-evaluated when
the Bazel server restarts); the files' contents are tracked like any source file.
"""

def _debian_files_impl(rctx):
    missing = []
    for name, path in rctx.attr.files.items():
        src = rctx.path(path)
        if not src.exists:
            missing.append("  %s (for @%s//:%s)" % (path, rctx.name, name))
            continue
        rctx.symlink(src, name)
    if missing:
        fail("\n".join(["missing files of Debian package %s:" % rctx.attr.package] + missing + [
            "Run ./bazelw (it installs the pinned packages).",
        ]))
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.symlink(rctx.attr.build_file, "BUILD.bazel")

debian_files = repository_rule(
    implementation = _debian_files_impl,
    attrs = {
        "package": attr.string(mandatory = True, doc = "the Debian package the files come from (for messages)"),
        "files": attr.string_dict(mandatory = True, doc = "name in the repository -> absolute path"),
        "build_file": attr.label(mandatory = True, allow_single_file = True),
    },
    local = True,
)

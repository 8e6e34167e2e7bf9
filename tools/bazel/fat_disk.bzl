"""fat_disk: a FAT32 data disk image (no partition table) and its SHA-256 manifest (tools/image/mkfat.sh)."""

def _fat_disk_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".img")
    manifest = ctx.actions.declare_file(ctx.label.name + "_sha256.txt")
    args = [out.path, manifest.path, str(ctx.attr.size_mib), ctx.attr.volume_id, ctx.attr.volume_label]
    prefix = ctx.attr.strip_prefix.rstrip("/") + "/"
    for f in ctx.files.srcs:
        if not f.short_path.startswith(prefix):
            fail("%s is not under strip_prefix %s" % (f.short_path, prefix))
        args.append("%s=/%s" % (f.path, f.short_path[len(prefix):]))
    for dest, size in ctx.attr.patterns.items():
        args.append("--pattern=%s=%s" % (size, dest))
    for dest, size in ctx.attr.zeros.items():
        args.append("--zeros=%s=%s" % (size, dest))
    ctx.actions.run(
        executable = ctx.executable._mkfat,
        arguments = args,
        inputs = ctx.files.srcs,
        outputs = [out, manifest],
        mnemonic = "FatDisk",
        progress_message = "Building FAT32 disk %s" % out.short_path,
        use_default_shell_env = True,
    )
    return [
        DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out])),
        OutputGroupInfo(sha256 = depset([manifest])),
    ]

fat_disk = rule(
    implementation = _fat_disk_impl,
    doc = """A FAT32 volume (sector 0 is the boot sector) holding `srcs` at their paths below
`strip_prefix`, plus generated files. The manifest (output group `sha256`) lists every file as
`<sha256>  /path`, sorted by path.""",
    attrs = {
        "srcs": attr.label_list(allow_files = True),
        "strip_prefix": attr.string(mandatory = True, doc = "package path the disk's root maps to"),
        "patterns": attr.string_dict(doc = "disk path -> size in bytes of mkfat.sh's test pattern"),
        "zeros": attr.string_dict(doc = "disk path -> size in bytes of a file of zeros"),
        "size_mib": attr.int(default = 64),
        "volume_id": attr.string(default = "fe22d15c"),
        "volume_label": attr.string(default = "FERRITE"),
        "_mkfat": attr.label(
            default = "//tools/image:mkfat.sh",
            executable = True,
            cfg = "exec",
            allow_single_file = True,
        ),
    },
)

"""disk_image: a GPT disk image with a FAT32 EFI system partition (tools/image/mkimage.sh)."""

def _disk_image_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".img")
    args = [out.path, str(ctx.attr.size_mib)]
    inputs = []
    for target, dest in ctx.attr.files.items():
        files = target[DefaultInfo].files.to_list()
        if len(files) != 1:
            fail("%s must provide exactly one file, got %d" % (target.label, len(files)))
        inputs.append(files[0])
        args.append("%s=%s" % (files[0].path, dest))
    ctx.actions.run(
        executable = ctx.executable._mkimage,
        arguments = args,
        inputs = inputs,
        outputs = [out],
        mnemonic = "DiskImage",
        progress_message = "Building disk image %s" % out.short_path,
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

disk_image = rule(
    implementation = _disk_image_impl,
    doc = "A GPT disk image whose EFI system partition holds `files` (label -> path in the ESP).",
    attrs = {
        "files": attr.label_keyed_string_dict(allow_files = True, mandatory = True),
        "size_mib": attr.int(default = 64),
        "_mkimage": attr.label(
            default = "//tools/image:mkimage.sh",
            executable = True,
            cfg = "exec",
            allow_single_file = True,
        ),
    },
)

"""qemu_boot_test: a headless QEMU boot of a disk image, judged by testing/qemu/boot_test.py."""

_FIRMWARE = {
    "x86_64": ("@ovmf//:OVMF_CODE_4M.fd", "@ovmf//:OVMF_VARS_4M.fd"),
    "aarch64": ("@aavmf//:AAVMF_CODE.fd", "@aavmf//:AAVMF_VARS.fd"),
}

# OVMF's SMM build with Debian's snakeoil test certificate enrolled as PK, KEK and db (Secure Boot
# on); the loader signed with that key is //:bootx64_snakeoil, in //:image_snakeoil.
_SECURE_BOOT_FIRMWARE = {
    "x86_64": ("@ovmf//:OVMF_CODE_4M.snakeoil.fd", "@ovmf//:OVMF_VARS_4M.snakeoil.fd"),
}

def _args_file_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".args")
    lines = [ctx.expand_location(a, targets = ctx.attr.data) for a in ctx.attr.arguments]
    for line in lines:
        if "\n" in line:
            fail("boot test arguments may not contain newlines: %r" % line)
    ctx.actions.write(out, "\n".join(lines) + "\n")
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

# Writes one argument per line. sh_test's `args` would split the expectations (regular
# expressions with spaces, quotes and backslashes) with shell tokenisation.
_args_file = rule(
    implementation = _args_file_impl,
    attrs = {
        "arguments": attr.string_list(),
        "data": attr.label_list(allow_files = True),
    },
)

def qemu_boot_test(
        name,
        arch,
        image,
        expect = [],
        forbid = [],
        until = None,
        exit_code = None,
        cmdline = None,
        replace_files = {},
        delete_files = [],
        machine = None,
        memory = None,
        cpu = None,
        secure_boot = False,
        usable_slack_mib = None,
        disks = [],
        timeout_seconds = 120,
        extra_args = [],
        data = [],
        **kwargs):
    """One headless boot of `image` under QEMU, judged by testing/qemu/boot_test.py.

    Args:
      name: the sh_test's name.
      arch: "x86_64" (OVMF, q35 by default) or "aarch64" (AAVMF, virt).
      image: a disk_image label.
      expect: regular expressions that must appear in the serial log, in this order.
      forbid: regular expressions that must not appear (QEMU is stopped at the first one seen).
      until: stop QEMU as soon as this appears (otherwise wait for it to exit).
      exit_code: QEMU's expected exit status (isa-debug-exit: (value << 1) | 1).
      cmdline: replaces \\ferrite\\cmdline.txt on a private copy of the image.
      replace_files: label (one file) -> destination path in the ESP.
      delete_files: ESP paths to delete from the copy.
      machine: QEMU -machine (q35, pc, virt).
      memory: QEMU -m.
      cpu: QEMU -cpu.
      secure_boot: boot the Secure Boot firmware (x86_64 only: OVMF with the snakeoil keys
        enrolled, Secure Boot on; QEMU gets SMM and a secure flash, see boot_test.py).
      usable_slack_mib: check the kernel's usable-RAM line against -m minus this many MiB.
      disks: raw disk images (labels) attached as modern virtio-blk-pci devices, in order
        (writable copies in the test's temporary directory; x86_64).
      timeout_seconds: wall-clock limit of the boot.
      extra_args: further boot_test.py arguments.
      data: further runfiles.
      **kwargs: passed to sh_test (tags, size, ...).
    """
    if secure_boot:
        if arch not in _SECURE_BOOT_FIRMWARE:
            fail("%s: no Secure Boot firmware for %s" % (name, arch))
        code, vars = _SECURE_BOOT_FIRMWARE[arch]
    else:
        code, vars = _FIRMWARE[arch]
    args = [
        "--arch",
        arch,
        "--image",
        "$(rootpath %s)" % image,
        "--code",
        "$(rootpath %s)" % code,
        "--vars",
        "$(rootpath %s)" % vars,
        "--timeout",
        str(timeout_seconds),
    ]
    for e in expect:
        args += ["--expect", e]
    for f in forbid:
        args += ["--forbid", f]
    if until:
        args += ["--until", until]
    if exit_code != None:
        args += ["--exit-code", str(exit_code)]
    if cmdline != None:
        args += ["--cmdline", cmdline]
    for label, dst in replace_files.items():
        args += ["--replace-file", "$(rootpath %s)=%s" % (label, dst)]
    for dst in delete_files:
        args += ["--delete-file", dst]
    if machine:
        args += ["--machine", machine]
    if memory:
        args += ["--memory", memory]
    if cpu:
        args += ["--cpu", cpu]
    if secure_boot:
        args.append("--secure-boot")
    if usable_slack_mib != None:
        args += ["--usable-slack-mib", str(usable_slack_mib)]
    for d in disks:
        args += ["--disk", "$(rootpath %s)" % d]
    args += extra_args
    inputs = [image, code, vars] + list(replace_files.keys()) + disks + data
    _args_file(
        name = name + "_args",
        arguments = args,
        data = inputs,
        testonly = True,
    )
    native.sh_test(
        name = name,
        srcs = ["//testing/qemu:boot_test.sh"],
        args = ["@$(rootpath :%s_args)" % name],
        data = [
            "//testing/qemu:boot_test.py",
            ":%s_args" % name,
        ] + inputs,
        # Two TCG guests at once on a 2-core machine slow each other past their timeouts.
        tags = ["cpu:2", "qemu"] + kwargs.pop("tags", []),
        size = kwargs.pop("size", "medium"),
        **kwargs
    )

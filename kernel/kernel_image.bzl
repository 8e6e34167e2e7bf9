"""verified_kernel: the final kernel ELF, after checking the two-stage symbol-table link.

kernel/BUILD links the kernel twice: `kernel_stage1.elf` with an empty `.ksymtab`, then
`kernel_linked.elf` with the table generated from the first link (kernel/tools/ksymtab.py). This
rule runs `ksymtab.py verify`, which fails the build unless both links have the same symbols at
the same addresses and identical loaded bytes outside `.ksymtab`, and the embedded table matches
the final ELF; then it outputs the verified ELF under the rule's own name (kernel.elf).
"""

# The pinned LLVM (tools/toolchain uses the same absolute root).
LLVM_BIN = "/usr/lib/llvm-19/bin"

def _verified_kernel_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.run_shell(
        command = 'python3 "$1" verify --nm "$2" --cxxfilt "$3" --stage1 "$4" --final "$5" --out "$6"',
        arguments = [
            ctx.file._script.path,
            LLVM_BIN + "/llvm-nm",
            LLVM_BIN + "/llvm-cxxfilt",
            ctx.file.stage1.path,
            ctx.file.final.path,
            out.path,
        ],
        inputs = [ctx.file._script, ctx.file.stage1, ctx.file.final],
        outputs = [out],
        mnemonic = "KernelSymtabVerify",
        progress_message = "Verifying the symbol-table link of %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

verified_kernel = rule(
    implementation = _verified_kernel_impl,
    attrs = {
        "stage1": attr.label(allow_single_file = True, mandatory = True),
        "final": attr.label(allow_single_file = True, mandatory = True),
        "_script": attr.label(default = "//kernel/tools:ksymtab.py", allow_single_file = True),
    },
)

def ksymtab_source(name, out, elf = None):
    """Generates the `.ksymtab` assembly for `elf`.

    Args:
      name: the genrule's name.
      out: the generated assembly file.
      elf: the first-stage kernel ELF; None writes an empty table.
    """
    script = "//kernel/tools:ksymtab.py"
    tools = "--nm %s/llvm-nm --cxxfilt %s/llvm-cxxfilt" % (LLVM_BIN, LLVM_BIN)
    if elf:
        cmd = "python3 $(location %s) generate %s $(location %s) $@" % (script, tools, elf)
        srcs = [script, elf]
    else:
        cmd = "python3 $(location %s) generate %s --empty $@" % (script, tools)
        srcs = [script]
    native.genrule(
        name = name,
        srcs = srcs,
        outs = [out],
        cmd = cmd,
    )

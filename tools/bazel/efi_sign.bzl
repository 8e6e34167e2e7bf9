"""efi_signed: an EFI application signed for UEFI Secure Boot with sbsign (Debian's sbsigntool).

One action: `openssl pkey` decrypts the private key into a private temporary file (mode 0600,
deleted when the action ends: the plain key is never a build output, so it reaches neither
bazel-bin nor a cache), sbsign signs `src` with it and sbverify checks the signed file against
`cert`, so a file whose signature does not verify is never produced. The password travels in the
action's environment, not on a command line (`ps` does not show it; `bazel aquery` does).

Meant for test keys such as Debian's OVMF "snakeoil" key (@ovmf//:PkKek-1-snakeoil.key, password
"snakeoil"), whose password is public anyway. Sign with a real key by hand
(docs/booting-real-pc.md).
"""

def _efi_signed_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out or ctx.label.name + ".efi")
    ctx.actions.run_shell(
        inputs = [ctx.file.src, ctx.file.key, ctx.file.cert],
        outputs = [out],
        # sbsign and sbverify report on stderr/stdout even when all is well; keep the build log quiet
        # unless something fails.
        command = " && ".join([
            "umask 077",
            'key="$(mktemp)"',
            "trap 'rm -f \"$key\"' EXIT",
            'log="$(openssl pkey -in "$1" -passin env:FERRITE_KEY_PASSWORD -out "$key" 2>&1)" || { echo "openssl: $log" >&2; exit 1; }',
            'log="$(sbsign --key "$key" --cert "$2" --output "$4" "$3" 2>&1)" || { echo "$log" >&2; exit 1; }',
            'log="$(sbverify --cert "$2" "$4" 2>&1)" || { echo "sbverify: $log" >&2; exit 1; }',
        ]),
        arguments = [ctx.file.key.path, ctx.file.cert.path, ctx.file.src.path, out.path],
        env = {
            "FERRITE_KEY_PASSWORD": ctx.attr.key_password,
            "PATH": "/usr/bin:/bin",  # Debian's openssl and sbsigntool
        },
        mnemonic = "SbSign",
        progress_message = "Signing %s for Secure Boot" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

efi_signed = rule(
    implementation = _efi_signed_impl,
    doc = "`src` (one PE32+ EFI file) signed with `key`/`cert` by sbsign and checked by sbverify.",
    attrs = {
        "src": attr.label(mandatory = True, allow_single_file = True),
        "key": attr.label(mandatory = True, allow_single_file = True, doc = "PEM private key, possibly encrypted"),
        "key_password": attr.string(doc = "the key's password (a test key's public one; \"\" if unencrypted)"),
        "cert": attr.label(mandatory = True, allow_single_file = True, doc = "PEM certificate of `key`"),
        "out": attr.string(doc = "the signed file's name (default: <name>.efi)"),
    },
)

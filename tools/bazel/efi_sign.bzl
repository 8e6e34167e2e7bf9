"""efi_signed: an EFI application signed for UEFI Secure Boot with sbsign (Debian's sbsigntool).

Two actions: `openssl pkey` decrypts the private key into this target's output tree (never into
the source tree: no key is checked in), then sbsign signs `src` with it and sbverify checks the
signed file against `cert`, so a file whose signature does not verify is never produced.

Meant for test keys such as Debian's OVMF "snakeoil" key (@ovmf//:PkKek-1-snakeoil.key, password
"snakeoil"): the decrypted key is an ordinary build output. Sign with a real key by hand
(docs/booting-real-pc.md).
"""

def _efi_signed_impl(ctx):
    key = ctx.actions.declare_file(ctx.label.name + ".key.pem")
    ctx.actions.run_shell(
        inputs = [ctx.file.key],
        outputs = [key],
        command = 'umask 077 && openssl pkey -in "$1" -passin "pass:$2" -out "$3"',
        arguments = [ctx.file.key.path, ctx.attr.key_password, key.path],
        mnemonic = "DecryptSigningKey",
        progress_message = "Decrypting the signing key for %s" % ctx.label,
        use_default_shell_env = True,
    )
    out = ctx.actions.declare_file(ctx.attr.out or ctx.label.name + ".efi")
    ctx.actions.run_shell(
        inputs = [ctx.file.src, key, ctx.file.cert],
        outputs = [out],
        # sbsign and sbverify report on stderr/stdout even when all is well; keep the build log quiet
        # unless something fails.
        command = " && ".join([
            'log="$(sbsign --key "$1" --cert "$2" --output "$4" "$3" 2>&1)" || { echo "$log" >&2; exit 1; }',
            'log="$(sbverify --cert "$2" "$4" 2>&1)" || { echo "sbverify: $log" >&2; exit 1; }',
        ]),
        arguments = [key.path, ctx.file.cert.path, ctx.file.src.path, out.path],
        mnemonic = "SbSign",
        progress_message = "Signing %s for Secure Boot" % out.short_path,
        use_default_shell_env = True,
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

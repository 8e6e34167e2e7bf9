#!/usr/bin/env bash
# sh_test entry point for testing/qemu/boot_test.py (see testing/qemu/defs.bzl).
set -euo pipefail
exec python3 testing/qemu/boot_test.py "$@"

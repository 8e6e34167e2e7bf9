#!/usr/bin/env bash
# sh_test entry point for testing/qemu/storage_test.py.
set -euo pipefail
exec python3 testing/qemu/storage_test.py "$@"

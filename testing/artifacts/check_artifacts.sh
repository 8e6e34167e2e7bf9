#!/usr/bin/env bash
set -euo pipefail
exec python3 testing/artifacts/check_artifacts.py "$@"

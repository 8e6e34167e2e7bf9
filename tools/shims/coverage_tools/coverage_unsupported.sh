#!/bin/sh
echo "bazel coverage is not supported in this offline workspace (tools/shims/coverage_tools)" >&2
exit 1

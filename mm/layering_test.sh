#!/bin/sh
# Each argument is a genquery result: the labels a package's product targets reach although the
# layering in mm/BUILD forbids them. All must be empty.
status=0
for result in "$@"; do
  if [ -s "$result" ]; then
    echo "layering violated ($(basename "$result")): these are reachable:" >&2
    sed 's/^/  /' "$result" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "mm layering: $# rules hold"
exit "$status"

#!/usr/bin/env bash
# The Secure Boot signatures of the loader, checked with sbverify against a certificate:
#   check_signatures.sh CERT (good|bad) FILE [(good|bad) FILE ...]
# good: FILE carries exactly one signature and it verifies against CERT; bad: it does not verify.
set -euo pipefail
cert="$1"
shift
status=0
while (($# >= 2)); do
  want="$1" file="$2"
  shift 2
  if out="$(sbverify --cert "$cert" "$file" 2>&1)"; then verified=1; else verified=0; fi
  out="${out//$'\n'/; }"
  signatures="$(sbverify --list "$file" 2>/dev/null | grep -c '^signature [0-9]' || true)"
  case "$want" in
    good)
      if ((verified)) && [[ "$signatures" == 1 ]]; then
        echo "ok: $file: one signature, verifies against $cert"
      else
        echo "FAIL: $file: $signatures signature(s), sbverify: $out"
        status=1
      fi
      ;;
    bad)
      if ((verified)); then
        echo "FAIL: $file verifies against $cert but must not"
        status=1
      else
        echo "ok: $file does not verify against $cert ($out)"
      fi
      ;;
    *) echo "check_signatures.sh: expected good or bad, got $want" >&2; exit 2 ;;
  esac
done
(($# == 0)) || { echo "check_signatures.sh: odd arguments: $*" >&2; exit 2; }
exit "$status"

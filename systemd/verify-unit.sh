#!/usr/bin/env bash
# `systemd-analyze verify` on the unit, failing on ANY output: unknown keys and bad values
# are only warnings (exit 0), so the exit status alone would let a typo through.
# ExecStart is pointed at an existing binary first, since verify exits 1 if it is missing.
set -euo pipefail
unit="${1:-$(dirname "$0")/focus-assist.service}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -E 's#^ExecStart=[^ ]+#ExecStart=/bin/true#' "$unit" > "$tmp/focus-assist.service"
set +e
out=$(systemd-analyze verify "$tmp/focus-assist.service" 2>&1)
rc=$?
set -e
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    echo "systemd-analyze verify: $unit is not clean (exit $rc)" >&2
    exit 1
fi
echo "systemd-analyze verify: $unit clean"

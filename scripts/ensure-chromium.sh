#!/usr/bin/env bash
# The browser test (tests/test_browser.py) renders every page in Debian's chromium. In CI it must
# run, so install chromium there when it is missing; elsewhere the test skips with a reason.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
if [[ "${CI:-}" != "true" ]]; then
    echo "ensure-chromium: $CHROMIUM not found; the browser test will be skipped" \
         "(with CI=true this script installs it)." >&2
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
    as_root() { sudo -n "$@"; }
else
    echo "ensure-chromium: $CHROMIUM is missing, and this user is not root and has no sudo." >&2
    exit 1
fi
echo "ensure-chromium: installing Debian's chromium (CI=true, $CHROMIUM missing)" >&2
as_root apt-get update
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
test -x "$CHROMIUM"

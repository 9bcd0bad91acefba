#!/usr/bin/env bash
# Debian's chromium and its chromedriver, for the console's browser test (tests/integration/test_console.py).
#
#   scripts/ensure-browser.sh      install chromium and chromium-driver with apt-get when either is missing
#
# The test drives /usr/bin/chromium through /usr/bin/chromedriver (selenium, from requirements/dev.txt).
# Installing needs root (or sudo); when both are already there it does nothing and needs no privilege.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-browser: no apt-get here; install chromium and its chromedriver at /usr/bin/chromium and /usr/bin/chromedriver" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "ensure-browser: installing chromium and chromium-driver (apt-get)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version >&2

#!/usr/bin/env bash
# Programs the tests drive besides the stack: headless Chromium (the load
# report is rendered and screenshotted in a test) and wrk (the load runner's
# benchmark baseline). Installed from Debian's packages when missing.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
[[ ${#missing[@]} -eq 0 ]] && exit 0
[[ $(id -u) -eq 0 ]] || { echo "test-tools: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2; exit 1; }
echo "installing ${missing[*]} (Debian packages)..." >&2
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Programs the tests drive besides the stack: headless Chromium (the load
# report is rendered and screenshotted in a test) and wrk (the load runner's
# benchmark baseline), installed from Debian's packages when missing;
# cargo-deny (licences, duplicate direct dependencies, sources: deny.toml),
# built from crates.io at the pinned version when missing or another version;
# helm (tests/tests/helm.rs), crane (tests/tests/image.rs), etcd and
# kube-apiserver (tests/tests/apiserver.rs), built from the Go module proxy by the
# stack script and cached under $GLASSHOUSE_HOME/bin (deploy/local/tools/*/go.mod pin
# them; the first build of kube-apiserver is long: deploy/README.md, "A real API server");
# and schemathesis (tests/tests/schemathesis.rs), from PyPI at the pinned version
# into its own venv, $GLASSHOUSE_HOME/opt/schemathesis-<version>.
set -euo pipefail
"$(dirname "${BASH_SOURCE[0]}")/stack" install helm crane etcd kube-apiserver
SCHEMATHESIS_VERSION=4.32.5
st_venv="$("$(dirname "${BASH_SOURCE[0]}")/stack" home)/opt/schemathesis-$SCHEMATHESIS_VERSION"
if [[ ! -e $st_venv/installed ]]; then
  # A venv cannot be moved (its scripts name their interpreter by path): build
  # it in place and mark it complete last, so a cut-off install is redone.
  echo "installing schemathesis $SCHEMATHESIS_VERSION (PyPI, into $st_venv, once)..." >&2
  rm -rf "$st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  touch "$st_venv/installed"
fi
CARGO_DENY_VERSION=0.20.2
if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
  echo "installing cargo-deny $CARGO_DENY_VERSION (cargo install, a few minutes once)..." >&2
  cargo install cargo-deny --version "=$CARGO_DENY_VERSION" --locked --quiet
fi
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
[[ ${#missing[@]} -eq 0 ]] && exit 0
[[ $(id -u) -eq 0 ]] || { echo "test-tools: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2; exit 1; }
echo "installing ${missing[*]} (Debian packages)..." >&2
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Builds the Debian package: target/debian/flowsentry_<version>-1_<arch>.deb (cargo-deb).
# The packaged /etc/flowsentry/flowsentry.toml is config/flowsentry.toml with the paths a
# package install needs (models under /usr/share/flowsentry, alerts to /var/log/flowsentry).
#   packaging/build-deb.sh            (cargo install cargo-deb --locked, once)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo deb --version >/dev/null 2>&1 || {
  echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}
mkdir -p target/deb-assets
# Model paths, and the stdout sink replaced by the JSON file sink.
sed -e 's|^path = "../model/forest.json"|path = "/usr/share/flowsentry/forest.json"|' \
    -e 's|^model = "../model/host-forest.json"|model = "/usr/share/flowsentry/host-forest.json"|' \
    config/flowsentry.toml | python3 -c '
import sys
text = sys.stdin.read()
old = "[[alerts.sinks]]\ntype = \"stdout\"\n"
new = "[[alerts.sinks]]\ntype = \"json\"\npath = \"/var/log/flowsentry/alerts.json\"\n"
if old not in text or "/usr/share/flowsentry/forest.json" not in text \
        or "/usr/share/flowsentry/host-forest.json" not in text:
    sys.exit("packaging/build-deb.sh: config/flowsentry.toml changed shape; update the edits")
sys.stdout.write(text.replace(old, new, 1))
' > target/deb-assets/flowsentry.toml
cargo deb --strip "$@"

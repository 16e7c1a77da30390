#!/usr/bin/env bash
# CI: build the .deb, install it with dpkg -i, check the installed config and unit, remove it.
# Needs root (dpkg). Fails on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
packaging/build-deb.sh
deb=$(ls -t target/debian/flowsentry_*.deb | head -n 1)
echo "built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
if dpkg -s flowsentry >/dev/null 2>&1; then
  echo "flowsentry is already installed on this machine: refusing to replace it" >&2
  exit 1
fi
cleanup() { dpkg --purge flowsentry >/dev/null 2>&1 || true; }
trap cleanup EXIT
dpkg -i "$deb"
test -x /usr/bin/flowsentry
test -d /var/log/flowsentry
test -f /usr/share/flowsentry/forest.json && test -f /usr/share/flowsentry/host-forest.json
grep -qx /etc/flowsentry/flowsentry.toml /var/lib/dpkg/info/flowsentry.conffiles
flowsentry check-config /etc/flowsentry/flowsentry.toml > /dev/null
systemd-analyze verify /lib/systemd/system/flowsentry@.service
# Instances verify too (the template's %i filled in).
systemd-analyze verify flowsentry@eth0.service
dpkg -r flowsentry
test ! -e /usr/bin/flowsentry
test -e /etc/flowsentry/flowsentry.toml   # a removed package keeps its conffiles
dpkg --purge flowsentry
test ! -e /etc/flowsentry/flowsentry.toml
test ! -e /var/log/flowsentry
trap - EXIT
echo "deb: installed, check-config and systemd-analyze verify passed, removed and purged"

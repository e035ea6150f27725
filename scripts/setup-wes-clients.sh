#!/usr/bin/env bash
# The real GA4GH WES clients the end-to-end tests drive, in a virtualenv of their own
# (.tools/wes-clients): wes-client (package wes-service) and toil-wes-cwl-runner (package toil[cwl]).
# They are test tools, not dependencies of the gateway, and their pins must not clash with ours.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
venv=.tools/wes-clients
wanted="wes-service==5.0 toil[cwl]==9.6.0"
stamp="$venv/.installed-$(echo "$wanted" | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/pip" install -q $wanted
rm -f "$venv"/.installed-*
touch "$stamp"
echo "installed WES clients in $venv"

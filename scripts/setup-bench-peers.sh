#!/usr/bin/env bash
# The peer WES servers `make bench` compares the gateway with, in a virtualenv of their own
# (.tools/bench-peers): wes-server (package wes-service, its cwl_runner backend) and Sapporo
# (package sapporo), each with the same cwltool release as the gateway. They are benchmark
# baselines, not dependencies of the gateway, and their pins must not clash with ours.
# Sapporo's run.sh needs jq (installed with apt when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
venv=.tools/bench-peers
# cwltool: the release the gateway's virtualenv resolves within its `cwltool>=3.3,<3.4`, so every engine in the
# comparison is the same (benchmarks/wes.py reports both versions).
wanted="wes-service==5.0 sapporo==2.4.0 cwltool==3.3.20260925135507"
stamp="$venv/.installed-$(echo "$wanted" | sha256sum | cut -c1-16)"
if ! command -v jq >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: jq"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends jq >/dev/null
fi
[ -f "$stamp" ] && exit 0
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/pip" install -q $wanted
rm -f "$venv"/.installed-*
touch "$stamp"
echo "installed the benchmark's peer WES servers in $venv"

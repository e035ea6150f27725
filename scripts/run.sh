#!/usr/bin/env bash
# Serve the gateway on the embedded default and print how to reach it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export TRE_GATEWAY_DATA_DIR=${TRE_GATEWAY_DATA_DIR:-$here/.tre-gateway}
export TRE_GATEWAY_LOG_JSON=${TRE_GATEWAY_LOG_JSON:-false}
.venv/bin/tre-gateway migrate >/dev/null
token=$(.venv/bin/tre-gateway token --user researcher --project demo --role researcher)
cat <<MSG
Data directory: $TRE_GATEWAY_DATA_DIR
Dev bearer token (user 'researcher', project 'demo', valid 12 h):
  $token
Outputs may be written under: file://$TRE_GATEWAY_DATA_DIR/store/released/demo/
Egress review: ${TRE_GATEWAY_EGRESS_REVIEW:-human}
APIs: TES /ga4gh/tes/v1  WES /ga4gh/wes/v1  airlock /airlock/v1 (reviewers: /airlock/)  crates /five-safes/v1
MSG
exec .venv/bin/tre-gateway serve

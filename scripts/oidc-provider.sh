#!/usr/bin/env bash
# A real OpenID Connect provider on loopback, for integration tests: LemonLDAP::NG (Debian package)
# served by plackup, without a web server and without touching /etc.
#
#   scripts/oidc-provider.sh start DIR PORT   install if missing, write config into DIR, start on
#                                             127.0.0.1:PORT, wait for discovery, print the PID
#   scripts/oidc-provider.sh stop DIR         stop the provider started with DIR
#
# What it serves (issuer http://127.0.0.1:PORT, discovery at /.well-known/openid-configuration):
#   - users (Demo backend, password = login):
#       dwho    roles [researcher]                  projects [p1]
#       rtyler  roles [researcher, output_checker]  projects [p2, p3]
#       msmith  no roles, no projects
#   - clients (resource-owner password grant, RS256 JWT access tokens carrying the user claims):
#       tre-gateway / tre-gateway-secret   aud ["tre-gateway"]
#       other-app   / other-app-secret     aud ["other-app"]
#   - claims: sub (opaque, not the login), preferred_username, name, email, roles, projects (JSON lists)
#
# Needs root for the package installation (Debian 12: lemonldap-ng 2.16), nothing else.
set -euo pipefail

PACKAGES=(lemonldap-ng libplack-perl libgd-securityimage-perl libimage-magick-perl libstring-random-perl
  libio-string-perl openssl curl)
PSGI=/usr/share/lemonldap-ng/portal/htdocs/index.psgi
TEMPLATES=/usr/share/lemonldap-ng/portal/templates

usage() {
  echo "usage: $0 start DIR PORT | stop DIR" >&2
  exit 2
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "oidc-provider: packages missing (${missing[*]}) and not root: cannot install them" >&2
    return 1
  fi
  echo "oidc-provider: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=600)
  # A fresh machine may have no package lists yet: update once and retry.
  if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >&2; then
    "${apt[@]}" update >&2
    "${apt[@]}" install --no-install-recommends "${missing[@]}" >&2
  fi
}

pem_as_json() {  # a PEM file as the inside of a JSON string
  awk '{printf "%s\\n", $0}' "$1"
}

write_config() {
  local dir=$1 port=$2 issuer="http://127.0.0.1:$2"
  mkdir -p "$dir/conf" "$dir/sessions/lock" "$dir/psessions/lock" "$dir/cache" "$dir/notifications"
  if [ ! -s "$dir/signing-key.pem" ]; then
    # PKCS#1 ("traditional"): the form Crypt::OpenSSL::RSA reads.
    openssl genrsa -traditional -out "$dir/signing-key.pem" 2048 2>/dev/null
    openssl rsa -in "$dir/signing-key.pem" -pubout -out "$dir/signing-key.pub" 2>/dev/null
  fi
  chmod 600 "$dir/signing-key.pem"

  cat >"$dir/lemonldap-ng.ini" <<EOF
[all]
logLevel = warn

[configuration]
type = File
dirName = $dir/conf

[portal]
staticPrefix = /static
templateDir = $TEMPLATES
languages = en
EOF

  local private public
  private=$(pem_as_json "$dir/signing-key.pem")
  public=$(pem_as_json "$dir/signing-key.pub")
  # Macros are Perl expressions over the session; '\$' keeps them away from the shell.
  cat >"$dir/conf/lmConf-1.json" <<EOF
{
  "cfgNum": 1,
  "cfgAuthor": "tre-gateway tests",
  "cfgDate": "1700000000",
  "cfgVersion": "2.16.1",
  "portal": "$issuer/",
  "domain": "127.0.0.1",
  "cookieName": "lemonldap",
  "securedCookie": 0,
  "authentication": "Demo",
  "userDB": "Same",
  "passwordDB": "Demo",
  "registerDB": "Null",
  "demoExportedVars": {"uid": "uid", "cn": "cn", "mail": "mail"},
  "whatToTrace": "uid",
  "macros": {
    "roles": "\$uid eq 'dwho' ? 'researcher' : \$uid eq 'rtyler' ? 'researcher; output_checker' : ''",
    "projects": "\$uid eq 'dwho' ? 'p1' : \$uid eq 'rtyler' ? 'p2; p3' : ''",
    "subject": "'u-' . join('', map { sprintf('%02x', ord) } split(//, \$uid))"
  },
  "groups": {},
  "exportedVars": {},
  "exportedHeaders": {},
  "locationRules": {},
  "notification": 0,
  "loginHistoryEnabled": 0,
  "bruteForceProtection": 0,
  "globalStorage": "Apache::Session::File",
  "globalStorageOptions": {
    "Directory": "$dir/sessions",
    "LockDirectory": "$dir/sessions/lock",
    "generateModule": "Lemonldap::NG::Common::Apache::Session::Generate::SHA256"
  },
  "persistentStorage": "Apache::Session::File",
  "persistentStorageOptions": {"Directory": "$dir/psessions", "LockDirectory": "$dir/psessions/lock"},
  "localSessionStorage": "Cache::FileCache",
  "localSessionStorageOptions": {
    "cache_root": "$dir/cache",
    "cache_depth": 3,
    "default_expires_in": 600,
    "directory_umask": "007",
    "namespace": "lemonldap-ng-sessions"
  },
  "notificationStorage": "File",
  "notificationStorageOptions": {"dirName": "$dir/notifications"},
  "timeout": 72000,
  "issuerDBOpenIDConnectActivation": 1,
  "oidcServiceMetaDataIssuer": "$issuer",
  "oidcServicePrivateKeySig": "$private",
  "oidcServicePublicKeySig": "$public",
  "oidcServiceKeyIdSig": "tre-test-key",
  "oidcServiceIgnoreScopeForClaims": 1,
  "oidcServiceAccessTokenExpiration": 600,
  "oidcRPMetaDataOptions": {
    "tre-gateway": {
      "oidcRPMetaDataOptionsClientID": "tre-gateway",
      "oidcRPMetaDataOptionsClientSecret": "tre-gateway-secret",
      "oidcRPMetaDataOptionsAllowPasswordGrant": 1,
      "oidcRPMetaDataOptionsAccessTokenJWT": 1,
      "oidcRPMetaDataOptionsAccessTokenClaims": 1,
      "oidcRPMetaDataOptionsAccessTokenSignAlg": "RS256",
      "oidcRPMetaDataOptionsIDTokenSignAlg": "RS256",
      "oidcRPMetaDataOptionsIDTokenForceClaims": 1,
      "oidcRPMetaDataOptionsUserIDAttr": "subject",
      "oidcRPMetaDataOptionsRedirectUris": "http://127.0.0.1/unused"
    },
    "other-app": {
      "oidcRPMetaDataOptionsClientID": "other-app",
      "oidcRPMetaDataOptionsClientSecret": "other-app-secret",
      "oidcRPMetaDataOptionsAllowPasswordGrant": 1,
      "oidcRPMetaDataOptionsAccessTokenJWT": 1,
      "oidcRPMetaDataOptionsAccessTokenClaims": 1,
      "oidcRPMetaDataOptionsAccessTokenSignAlg": "RS256",
      "oidcRPMetaDataOptionsIDTokenSignAlg": "RS256",
      "oidcRPMetaDataOptionsIDTokenForceClaims": 1,
      "oidcRPMetaDataOptionsUserIDAttr": "subject",
      "oidcRPMetaDataOptionsRedirectUris": "http://127.0.0.1/unused"
    }
  },
  "oidcRPMetaDataExportedVars": {
    "tre-gateway": {
      "preferred_username": "uid",
      "name": "cn",
      "email": "mail",
      "roles": "roles;string;always",
      "projects": "projects;string;always"
    },
    "other-app": {
      "preferred_username": "uid",
      "roles": "roles;string;always",
      "projects": "projects;string;always"
    }
  }
}
EOF
}

start() {
  local dir=$1 port=$2
  [[ $port =~ ^[0-9]+$ ]] || usage
  install_packages
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  stop "$dir"  # a provider left running from this directory
  write_config "$dir" "$port"
  local url="http://127.0.0.1:$port/.well-known/openid-configuration"
  LLNG_DEFAULTCONFFILE="$dir/lemonldap-ng.ini" setsid plackup --host 127.0.0.1 --port "$port" \
    --no-default-middleware "$PSGI" </dev/null >"$dir/provider.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/provider.pid"
  local i
  for i in $(seq 1 150); do
    if ! alive "$pid"; then
      echo "oidc-provider: the provider exited; its log follows" >&2
      cat "$dir/provider.log" >&2
      rm -f "$dir/provider.pid"
      return 1
    fi
    if curl -fsS --noproxy '*' --max-time 2 -o /dev/null "$url" 2>/dev/null && alive "$pid"; then
      echo "$pid"
      return 0
    fi
    sleep 0.1
  done
  echo "oidc-provider: no answer from $url after 15 s; its log follows" >&2
  cat "$dir/provider.log" >&2
  stop "$dir"
  return 1
}

alive() {  # running, not merely a zombie waiting to be reaped
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [ -n "$state" ] && [ "$state" != Z ]
}

stop() {
  local dir=$1 pid i
  [ -s "$dir/provider.pid" ] || return 0
  pid=$(cat "$dir/provider.pid")
  # Only the provider itself: a stale PID file must not stop whatever process reuses the number.
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if [[ $cmdline == *plackup* ]]; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/provider.pid"
}

case "${1:-}" in
  start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# A throw-away single-node Ceph with a RADOS Gateway on loopback, for the S3 store's tests.
#
#   scripts/ceph-rgw.sh start   # idempotent: starts it unless it already answers; prints its env file
#   scripts/ceph-rgw.sh env     # prints the env file (CEPH_RGW_ENDPOINT, _ACCESS_KEY, _SECRET_KEY)
#   scripts/ceph-rgw.sh stop    # stops the daemons and removes the directory
#
# One monitor, one OSD on memstore (data in RAM) and radosgw, all configured in $CEPH_RGW_DIR (default
# /tmp/tre-ceph-rgw): nothing under /etc is read or written. No cephx (auth none) since everything
# listens on 127.0.0.1 only; the gateway still checks S3 signatures against the user created here.
# Needs Debian's `ceph-mon ceph-osd radosgw ceph-common` (installed with --no-install-recommends if missing
# and CEPH_RGW_INSTALL=1).
set -euo pipefail

DIR=${CEPH_RGW_DIR:-/tmp/tre-ceph-rgw}
CONF=$DIR/ceph.conf
ENVFILE=$DIR/env
ACCESS_KEY=${CEPH_RGW_ACCESS_KEY:-TREGATEWAYTESTKEY01}
# Test-only secret of a throw-away, loopback-only gateway.
SECRET_KEY=${CEPH_RGW_SECRET_KEY:-tre-gateway-ceph-test-secret-0123456789}

log() { echo "ceph-rgw: $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

answers() {  # the gateway answers HTTP on its port
    [[ -f $ENVFILE ]] || return 1
    # shellcheck disable=SC1090
    local endpoint; endpoint=$(. "$ENVFILE"; echo "$CEPH_RGW_ENDPOINT")
    python3 - "$endpoint" <<'PY' 2>/dev/null
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open(sys.argv[1] + "/", timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

need_binaries() {
    local missing=()
    for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
        command -v "$b" >/dev/null || missing+=("$b")
    done
    if ((${#missing[@]})); then
        if [[ ${CEPH_RGW_INSTALL:-0} == 1 ]]; then
            log "installing ceph-mon ceph-osd radosgw ceph-common"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                ceph-mon ceph-osd radosgw ceph-common >/dev/null
        else
            log "missing: ${missing[*]} (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common)"
            exit 3
        fi
    fi
}

ours() {  # ours PID: the process runs with this directory's ceph.conf (a stale pid file may name another)
    [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "-c $CONF "
}

stop() {
    local pids=() pid pidfile
    if [[ -d $DIR/run ]]; then
        for pidfile in "$DIR"/run/*.pid; do
            [[ -f $pidfile ]] || continue
            pid=$(cat "$pidfile")
            if ours "$pid"; then
                kill "$pid" 2>/dev/null || true
                pids+=("$pid")
            fi
        done
        for pid in "${pids[@]}"; do
            for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
            if ours "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
        done
    fi
    rm -rf "$DIR"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out waiting for $what; logs in $DIR/log"
            tail -n 20 "$DIR"/log/*.log >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}

start() {
    if answers; then
        cat "$ENVFILE"
        return
    fi
    need_binaries
    stop  # whatever is left of an earlier run
    mkdir -p "$DIR"/{mon,osd,rgw,run,log}
    local fsid mon_port rgw_port
    fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
    mon_port=$(free_port)
    rgw_port=$(free_port)
    cat >"$CONF" <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$mon_port
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
public_network = 127.0.0.0/8
cluster_network = 127.0.0.0/8
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
ms_mon_cluster_mode = crc
ms_mon_service_mode = crc
ms_client_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
keyring = /dev/null
run_dir = $DIR/run
admin_socket = $DIR/run/\$cluster-\$name.asok
pid_file = $DIR/run/\$name.pid
log_file = $DIR/log/\$name.log
log_to_stderr = false
err_to_stderr = false
mon_cluster_log_file = $DIR/log/cluster.log
crash_dir = $DIR/crash
osd_objectstore = memstore
memstore_device_bytes = 2147483648
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
osd_data = $DIR/osd
mon_data = $DIR/mon
rgw_data = $DIR/rgw
[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$rgw_port
rgw_dns_name = 127.0.0.1
CONF
    monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" -i a
    wait_for 30 "the monitor" ceph -c "$CONF" --connect-timeout 2 mon stat
    ceph -c "$CONF" osd create >/dev/null
    ceph-osd -c "$CONF" -i 0 --mkfs >/dev/null 2>&1
    ceph-osd -c "$CONF" -i 0
    wait_for 60 "the OSD" bash -c "ceph -c '$CONF' osd stat | grep -q '1 up'"
    radosgw -c "$CONF" -n client.rgw
    wait_for 60 "the RADOS Gateway" bash -c "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $rgw_port), 1)'"
    radosgw-admin -c "$CONF" user create --uid=tre-gateway --display-name="TRE Gateway tests" \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
    cat >"$ENVFILE" <<ENV
CEPH_RGW_ENDPOINT=http://127.0.0.1:$rgw_port
CEPH_RGW_ACCESS_KEY=$ACCESS_KEY
CEPH_RGW_SECRET_KEY=$SECRET_KEY
CEPH_RGW_DIR=$DIR
ENV
    wait_for 30 "the RADOS Gateway to answer" answers
    cat "$ENVFILE"
}

case ${1:-start} in
    start) start ;;
    stop) stop ;;
    env) cat "$ENVFILE" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Builds the small local base image that the embedded image policy maps
# `alpine` and `busybox` to. A TRE mirrors its approved images the same way:
# nothing is pulled from a public registry.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF="$here/gateway/adapters/compute/containers.conf"
image="${1:-localhost/tre-base:latest}"
if podman image exists "$image"; then exit 0; fi
busybox=$(command -v busybox)
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/data" "$rootfs/etc"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> "$rootfs/etc/passwd"
chmod 1777 "$rootfs/tmp"
tar -C "$rootfs" -c . | podman import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
echo "built $image"

#!/usr/bin/env bash
# The Dockerfile built and run (`make test-container`, part of `make test`): Debian's podman builds the default (CPU)
# target and runs it the way deploy/kubernetes runs it; test/container/container.e2e.ts then checks it (readiness,
# the image's own HEALTHCHECK, predict and audit parity with the service run from source, kill -9 mid-audit on a
# volume, problem+json, uid 1000 and a read-only filesystem).
#
# No container registry is reachable here, so node:20.20.2-bookworm-slim cannot be pulled. The script makes a local
# stand-in for it: a Debian bookworm minbase root filesystem (mmdebstrap, from the Debian archive, with the slim
# image's dpkg excludes), this machine's Node.js binary (must be v20.20.2) at /usr/local/bin/node, npm 10.8.2 (the npm
# Node 20.20 ships; from the npm registry) in /usr/local/lib/node_modules, the official image's "node" user (1000:1000)
# and its docker-entrypoint.sh; `podman import`ed and passed as the Dockerfile's NODE_IMAGE build argument. A normal
# `docker build .` uses the official image.
#
# Everything podman keeps (images, layer cache, volumes, its containers.conf) lives under $ASM_FER_CONTAINER_STATE
# (default test/container/.state, gitignored): the base image and the layer cache stay there between runs, so a warm
# run builds in seconds. Containers are labelled and removed when the script ends, passed or failed.
#   test/container/run.sh                       needs podman, runc and mmdebstrap (`make podman` installs them)
#   ASM_FER_CONTAINER_NO_CACHE=1 test/container/run.sh   rebuild the image without the layer cache (base image kept)
#   test/container/run.sh --clean               remove the state folder (the image store included)
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE=$(realpath -m "${ASM_FER_CONTAINER_STATE:-test/container/.state}")
LABEL=asm-fer-test-container
IMAGE=localhost/asm-fer:test
NODE_VERSION=v20.20.2
NPM_VERSION=10.8.2
YARN_VERSION=1.22.22
# Bump when the base recipe below changes: the cached base image is looked up by this tag.
BASE_RECIPE=2
BASE=localhost/asm-fer-test-base:node${NODE_VERSION#v}-npm${NPM_VERSION}-r${BASE_RECIPE}
T_START=$(date +%s.%N)

secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

mkdir -p "$STATE"
export CONTAINERS_CONF=$STATE/containers.conf
# crun (podman's default runtime) refuses cgroups v1 + v2 ("hybrid mode") here; podman's default nofile/nproc ulimits
# exceed what this sandbox allows; no systemd to manage cgroups; events to a file, not the journal. libpod's own
# state (tmp_dir) and the CNI network definitions stay in the state folder too, not in /run/libpod and /etc/cni, so
# nothing is shared with another podman store on the machine.
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
tmp_dir = "$STATE/run/libpod"
events_logger = "file"
events_logfile_path = "$STATE/events.log"
[network]
network_config_dir = "$STATE/cni"
EOF
# One podman command line for this script, the e2e test and a person debugging: $STATE/podman ps -a
cat >"$STATE/podman" <<EOF
#!/bin/sh
CONTAINERS_CONF='$CONTAINERS_CONF' exec podman --root '$STATE/storage' --runroot '$STATE/run' --storage-driver overlay --runtime runc "\$@"
EOF
chmod +x "$STATE/podman"
PODMAN=$STATE/podman

if [ "${1:-}" = --clean ]; then
  "$PODMAN" rm -af -t 0 >/dev/null 2>&1 || true
  "$PODMAN" image rm -af >/dev/null 2>&1 || true # unmounts what is still mounted of the layers
  rm -rf "$STATE"
  echo "container: removed $STATE"
  exit 0
fi

for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "container: $tool is missing (make podman installs podman, runc and mmdebstrap)" >&2; exit 2; }
done

cleanup() {
  local ids
  ids=$("$PODMAN" ps -aq --filter "label=$LABEL" 2>/dev/null || true)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    "$PODMAN" rm -f -t 0 $ids >/dev/null 2>&1 || echo "container: could not remove containers $ids" >&2
  fi
  "$PODMAN" volume rm -f asm-fer-test-data >/dev/null 2>&1 || true
  rm -rf "$STATE/tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cleanup # leftovers of a run that was itself killed
mkdir -p "$STATE/tmp"

# --- the base image: node:20.20.2-bookworm-slim's stand-in, made once and kept in the store ----------------------------
if "$PODMAN" image exists "$BASE"; then
  echo "container: base image $BASE (cached)"
else
  node_bin=$(command -v node)
  [ "$("$node_bin" --version)" = "$NODE_VERSION" ] || { echo "container: $node_bin is $("$node_bin" --version), the base needs $NODE_VERSION" >&2; exit 2; }
  # The official image unpacks Node's release tarball into /usr/local, headers (include/node) included.
  node_include=$(realpath -m "$(dirname "$node_bin")/../include/node")
  grep -q "define NODE_PATCH_VERSION ${NODE_VERSION##*.}\$" "$node_include/node_version.h" \
    || { echo "container: no $NODE_VERSION headers in $node_include" >&2; exit 2; }
  case $(dpkg --print-architecture) in
    amd64) openssl_arch=linux-x86_64 ;;
    arm64) openssl_arch=linux-aarch64 ;;
    *) echo "container: the base recipe knows amd64 and arm64 only" >&2; exit 2 ;;
  esac
  T0=$(date +%s.%N)
  (cd "$STATE/tmp" && npm pack --silent "npm@$NPM_VERSION" "yarn@$YARN_VERSION" >/dev/null)
  cat >"$STATE/tmp/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command. The last
# part inside the "{}" is a workaround for the following bug in ash/dash:
# https://bugs.debian.org/cgi-bin/bugreport.cgi?bug=874264
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
EOF
  # minbase with merged /usr (no usrmerge package, so no perl) and the dpkg excludes of Debian's -slim images; then
  # what the official Dockerfile does: Node's release unpacked into /usr/local (binary, headers without the other
  # platforms' OpenSSL headers, npm), yarn 1 in /opt, the "node" user, docker-entrypoint.sh.
  mirror=http://deb.debian.org/debian
  chroot_env='env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root'
  # shellcheck disable=SC2016 # in the single-quoted hooks, $1 (the root filesystem) is mmdebstrap's to expand
  nice -n 10 mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
    --dpkgopt='path-exclude=/usr/share/linda/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook="copy-in $node_bin /usr/local/bin" \
    --customize-hook='mkdir -p "$1/usr/local/include"' --customize-hook="copy-in $node_include /usr/local/include" \
    --customize-hook="find \"\$1/usr/local/include/node/openssl/archs\" -mindepth 1 -maxdepth 1 ! -name $openssl_arch -exec rm -rf {} +" \
    --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf '$STATE/tmp/npm-$NPM_VERSION.tgz' --strip-components=1 --no-same-owner -C \"\$1/usr/local/lib/node_modules/npm\"" \
    --customize-hook="mkdir -p \"\$1/opt/yarn-v$YARN_VERSION\" && tar -xzf '$STATE/tmp/yarn-$YARN_VERSION.tgz' --strip-components=1 --no-same-owner -C \"\$1/opt/yarn-v$YARN_VERSION\"" \
    --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx" && ln -s node "$1/usr/local/bin/nodejs"' \
    --customize-hook="ln -s /opt/yarn-v$YARN_VERSION/bin/yarn \"\$1/usr/local/bin/yarn\" && ln -s /opt/yarn-v$YARN_VERSION/bin/yarnpkg \"\$1/usr/local/bin/yarnpkg\"" \
    --customize-hook="copy-in $STATE/tmp/docker-entrypoint.sh /usr/local/bin" \
    --customize-hook='chmod 755 "$1/usr/local/bin/docker-entrypoint.sh" && chown -R 0:0 "$1/usr/local" "$1/opt"' \
    --customize-hook='chroot "$1" groupadd --gid 1000 node && chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
    --customize-hook="chroot \"\$1\" $chroot_env sh -c 'node --version && npm --version && yarn --version' >/dev/null" \
    bookworm "$STATE/tmp/rootfs.tar" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $mirror-security bookworm-security main" \
    >"$STATE/base.log" 2>&1 || { tail -n 40 "$STATE/base.log" >&2; echo "container: FAILED: mmdebstrap (log: $STATE/base.log)" >&2; exit 1; }
  "$PODMAN" import --quiet \
    --change "ENV NODE_VERSION=${NODE_VERSION#v}" --change "ENV YARN_VERSION=$YARN_VERSION" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["node"]' \
    "$STATE/tmp/rootfs.tar" "$BASE" >/dev/null
  rm -f "$STATE/tmp/rootfs.tar"
  echo "container: base image $BASE made in $(secs "$T0") s"
fi

# --- the image: the Dockerfile's default target, on the stand-in base ------------------------------------------------
# --format docker keeps HEALTHCHECK (the OCI image format has no field for it); --network host reaches the Debian
# archive and the npm registry from the build's RUN steps. Two things only this machine needs are mounted into the
# RUN steps (podman build -v: they are not in any layer): npm's global config (/usr/local/etc/npmrc), naming this
# machine's CA bundle (its TLS egress goes through a proxy with its own CA, which Node's built-in list lacks), and
# nodedir=/usr/local, so that node-gyp compiles better-sqlite3 against the headers the image ships (its prebuilt
# binary on GitHub and node-gyp's headers on nodejs.org are out of reach here; the Dockerfile installs the compiler
# for that case).
T0=$(date +%s.%N)
build_flags=()
rm -rf "$STATE/build" && mkdir -p "$STATE/build"
printf 'nodedir=/usr/local\n' >"$STATE/build/npmrc"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$STATE/build/ca.crt"
  printf 'cafile=/usr/local/etc/ca.crt\n' >>"$STATE/build/npmrc"
fi
# A folder over the base's (empty) /usr/local/etc, so that no mount point is left behind in a layer.
build_flags+=(-v "$STATE/build:/usr/local/etc:ro")
[ "${ASM_FER_CONTAINER_NO_CACHE:-}" = 1 ] && build_flags+=(--no-cache)
if ! nice -n 10 "$PODMAN" build --format docker --network host --build-arg "NODE_IMAGE=$BASE" \
  "${build_flags[@]}" -t "$IMAGE" -f Dockerfile . >"$STATE/build.log" 2>&1; then
  tail -n 60 "$STATE/build.log" >&2
  echo "container: FAILED: podman build (the whole log: $STATE/build.log)" >&2
  exit 1
fi
BUILD_S=$(secs "$T0")
SIZE=$("$PODMAN" image inspect --format '{{.Size}}' "$IMAGE")
echo "container: built $IMAGE in $BUILD_S s$([ "${ASM_FER_CONTAINER_NO_CACHE:-}" = 1 ] && echo ' (no layer cache)'), $((SIZE / 1000000)) MB"

# --- the checks ------------------------------------------------------------------------------------------------------
ASM_FER_PODMAN=$PODMAN ASM_FER_IMAGE=$IMAGE ASM_FER_CONTAINER_LABEL=$LABEL ASM_FER_IMAGE_SIZE=$SIZE \
  nice -n 10 npx vitest run -c test/container/vitest.e2e.config.ts
echo "container: ok in $(secs "$T_START") s (build $BUILD_S s, image $((SIZE / 1000000)) MB)"

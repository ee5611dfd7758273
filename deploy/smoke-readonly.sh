#!/usr/bin/env bash
# Runs the built service (dist/main.js) the way deploy/kubernetes runs it, without a cluster: in a private mount
# namespace where the whole filesystem is read-only but for two fresh tmpfs standing for the pod's emptyDirs (the data
# folder and /tmp), with the ConfigMap's and the example Secret's environment. It serves a predict, an audit (the SQLite
# trail, written to the data tmpfs), the audit list and /metrics, then gets SIGTERM while two uploads are in flight, one
# shorter and one longer than the 10 s drain, and reports how long the process took to exit and every file it opened
# for writing (strace). Not part of `make test`: it needs root (unshare -m), curl, strace and `npm run build` first.
# The audit trail is SQLite (the one-replica form) unless SMOKE_AUDIT_DB gives a reachable PostgreSQL URL; the example
# Secret's URL is a placeholder.
#   sudo deploy/smoke-readonly.sh [port]                                     (default port 18500)
#   sudo SMOKE_AUDIT_DB=postgres://user:password@127.0.0.1:5432/db deploy/smoke-readonly.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-18500}

if [ "${SMOKE_INNER:-}" != 1 ]; then
  test -f dist/main.js || { echo "run npm run build first"; exit 2; }
  test -x deploy/.venv/bin/python || { echo "run make test-deploy first (deploy/.venv)"; exit 2; }
  mkdir -p data
  OUT=$(mktemp -d /dev/shm/asm-fer-smoke.XXXXXX)
  trap 'rm -rf "$OUT"' EXIT
  SMOKE_INNER=1 SMOKE_OUT=$OUT unshare -m --propagation private "$0" "$PORT"
  exit 0
fi

ROOT=$PWD
OUT=$SMOKE_OUT
mount -o remount,bind,ro /
mount -t tmpfs -o size=64m tmpfs /tmp
mount -t tmpfs -o size=512m tmpfs "$ROOT/data"
if touch "$ROOT/.smoke-should-fail" 2>/dev/null; then echo "the root filesystem is still writable"; exit 1; fi

# envFrom: the ConfigMap, then the Secret; ASM_FER_DATA_DIR points at the tmpfs standing for /app/data, and
# ASM_FER_AUDIT_DB is SMOKE_AUDIT_DB or unset.
eval "$(deploy/.venv/bin/python - "$ROOT" "$PORT" "${SMOKE_AUDIT_DB:-}" <<'PY'
import shlex, sys, yaml
env = {}
for path, key in (("deploy/kubernetes/configmap.yaml", "data"), ("deploy/kubernetes/examples/secret.yaml", "stringData")):
    env.update(yaml.safe_load(open(path))[key])
env.update(PORT=sys.argv[2], ASM_FER_DATA_DIR=f"{sys.argv[1]}/data", ASM_FER_AUDIT_DB=sys.argv[3])
print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items() if v))
PY
)"
URL=http://127.0.0.1:$PORT

# A 48 x 48 grey face-sized PNG and a 4000 x 4000 one (large enough for throttled uploads to last seconds).
python3 - "$OUT" <<'PY'
import struct, sys, zlib
def png(w: int, h: int) -> bytes:
    raw = b"".join(b"\x00" + (bytes(range(256)) * (w // 256 + 2))[y % 97 : y % 97 + w] for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
open(f"{sys.argv[1]}/face.png", "wb").write(png(48, 48))
open(f"{sys.argv[1]}/big.png", "wb").write(png(4000, 4000))
PY

strace -f -qq -o "$OUT/strace.log" -e trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,truncate \
  node dist/main.js >"$OUT/service.log" 2>&1 &
TRACER=$!
for i in $(seq 1 120); do curl -fsS -o /dev/null "$URL/v2/health/ready" 2>/dev/null && break; sleep 1; done
NODE=$(pgrep -P "$TRACER" -x node)
echo "ready after about $i s"
AUTH=(-H "Authorization: Bearer $ASM_FER_API_KEY")
echo "predict $(curl -s -o /dev/null -w '%{http_code}' -F image=@"$OUT/face.png" "$URL/v1/predict")," \
  "audit $(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" -F image=@"$OUT/face.png" -F label=happiness "$URL/v1/audit")," \
  "audit list $(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" "$URL/v1/audits?limit=5")," \
  "metrics $(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")"

SIZE=$(stat -c %s "$OUT/big.png")
for secs in 3 20; do
  curl -s -o /dev/null --limit-rate $((SIZE / secs)) -F image=@"$OUT/big.png" "$URL/v1/predict" \
    -w "upload of about $secs s in flight at SIGTERM: %{http_code} after %{time_total} s\n" &
done
sleep 1
T0=$(date +%s.%N)
kill -TERM "$NODE"
sleep 0.2
echo "readiness 0.2 s after SIGTERM: $(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/health/ready") (000: listener closed)"
wait "$TRACER" || true
T1=$(date +%s.%N)
wait || true
echo "process exited $(python3 -c "print(round($T1 - $T0, 2))") s after SIGTERM (drain: SHUTDOWN_GRACE_MS, src/main.ts)"
echo "opened for writing (path: result):"
grep -E 'O_WRONLY|O_RDWR|O_CREAT|^[0-9]+ +(creat|mkdir|mkdirat|rename|renameat2?|truncate)\(' "$OUT/strace.log" | grep -v '"/dev/' \
  | sed -E 's/^[0-9]+ +//; s/^[a-z0-9]+\((AT_FDCWD, )?"([^"]*)".*= (-?[0-9]+)( ([A-Z]+))?.*/  \2: \3 \5/' | sort -u
grep -E '"level":(40|50)|telemetry' "$OUT/service.log" | cut -c1-200 || true

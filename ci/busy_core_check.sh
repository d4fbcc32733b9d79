#!/usr/bin/env bash
# The shared-machine check: with one core kept busy by another process, a kernel run on
# 2 threads must be no slower than the same kernel on 1 thread (the pool's tasks are taken
# dynamically, so the thread that shares its core with the busy process takes fewer of them).
#
#   bash ci/busy_core_check.sh [BUILD_DIR] [FILTER] [TOLERANCE]
#
# Runs `tenpak bench --filter FILTER` twice under the same busy process (a shell loop), with
# OMP_NUM_THREADS=1 and =2, and compares the medians kernel by kernel: PASS when
# t(2 threads) <= t(1 thread) x TOLERANCE (default 1.05), else FAIL (exit 1). Needs 2 or more CPUs;
# with fewer it says so and exits 0. Numbers are this host's and this moment's: a third process
# competing for the CPUs changes them, so run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
F=${2:-'^gemv/(int4_g128|int4_g32|nf4_g64)/cpu/4096x4096$|^gemv/f32/cpu/4096x4096$'}
TOL=${3:-1.05}
T=$B/tenpak
[ -x "$T" ] || { echo "busy_core_check: no $T (build first)"; exit 2; }
if [ "$(nproc)" -lt 2 ]; then echo "busy_core_check: $(nproc) CPU: nothing to compare, skipped"; exit 0; fi
tmp=$(mktemp -d)
( while :; do :; done ) &
spin=$!
trap 'kill $spin 2>/dev/null || true; rm -rf "$tmp"' EXIT
sleep 0.2
echo "busy_core_check: one busy process (pid $spin) on this $(nproc)-CPU host; filter '$F'"
for n in 1 2; do
    OMP_NUM_THREADS=$n "$T" bench --filter "$F" --repetitions 5 --min-time 0.2 --json "$tmp/t$n.json" > "$tmp/t$n.txt"
done
python3 - "$tmp/t1.json" "$tmp/t2.json" "$TOL" <<'PY'
import json, sys
def medians(p):
    j = json.load(open(p))
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    return {b["run_name"]: b["real_time"] * scale[b.get("time_unit", "ns")] for b in j["benchmarks"]
            if b.get("aggregate_name") == "median"}
t1, t2, tol = medians(sys.argv[1]), medians(sys.argv[2]), float(sys.argv[3])
bad = 0
for name in sorted(t1):
    if name not in t2:
        continue
    r = t2[name] / t1[name]
    ok = r <= tol
    bad += not ok
    print(f"{'PASS' if ok else 'FAIL'} {name}: 1 thread {t1[name]:.3f} ms, 2 threads {t2[name]:.3f} ms ({r:.2f}x; bound {tol:.2f}x)")
if not t1:
    print("no benchmark matched"); sys.exit(2)
sys.exit(1 if bad else 0)
PY

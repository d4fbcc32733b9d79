#!/usr/bin/env bash
# CI stage: the benchmark matrix on a real SLURM. Starts a single-node cluster on this machine
# (Debian's slurm-wlm: munged, slurmctld and slurmd, each on its own socket / ports, with a
# generated slurm.conf of up to 2 CPUs), submits reports/bench-matrix-ci.json through
# ci/slurm/submit.sh (4 array tasks, merge afterok, missing-shard report afternotok), and checks:
#   1. every task's shard JSON (its shard, the array's run id), the merged table (one machine,
#      complete, the matrix's rows, ratios to the baseline), its plot; the afternotok job removed;
#   2. an array with one task cancelled: the afterok merge is removed, the afternotok merge names
#      the missing shard and exits 1, and no partial table is written.
# Every daemon it started is stopped on exit (trap), every job cancelled first.
#
#   ci/slurm/test.sh [BUILD_DIR]     (default build/, with BUILD_DIR/tenpak built)
#
# Exit 77 (skipped, with the reason) where a cluster cannot be started here: not root, slurm-wlm
# or munge missing and not installable, or the daemons do not come up. Any failure after the
# cluster is up is a real failure (exit 1), with the daemons' and jobs' logs printed.
set -uo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
build=${1:-build}
T=$(pwd)/$build/tenpak
[ -x "$T" ] || { echo "slurm stage: FAIL: no tenpak at $T (build it first)"; exit 1; }
skip() { echo "slurm stage: SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root to run slurmd and munged (slurmd launches jobs as their users)"

# -- packages
need=()
for b in munged munge slurmctld slurmd sbatch; do command -v "$b" >/dev/null 2>&1 || need=(slurm-wlm munge); done
if [ ${#need[@]} -gt 0 ]; then
  echo "slurm stage: installing ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
    >/dev/null 2>&1 || skip "could not install ${need[*]} (apt-get failed)"
fi

# -- the cluster, in a private folder
D=$(mktemp -d /tmp/tenpak-slurm.XXXXXX)
chmod 755 "$D"
mkdir -p "$D/state" "$D/spool" "$D/log" "$D/results"
export SLURM_CONF="$D/slurm.conf"
started=()
status=1
cleanup() {
  trap - EXIT INT TERM
  if [ -f "$D/slurmctld.pid" ] && command -v scancel >/dev/null; then
    timeout 10 scancel --quiet --full --user=root 2>/dev/null
    for _ in $(seq 1 20); do [ -z "$(timeout 5 squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  # stop the daemons this script started, by their pid, newest first
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    pf="$D/${started[$i]}.pid"
    [ -f "$pf" ] || continue
    pid=$(cat "$pf")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { echo "slurm stage: ${started[$i]} ($pid) did not stop, killing it"; kill -9 "$pid" 2>/dev/null; }
  done
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    for f in "$D"/log/*.log "$D"/results/*.out; do [ -f "$f" ] && { echo "---- $f"; tail -n 25 "$f"; }; done
  fi
  rm -rf "$D"
  echo "slurm stage: $( [ "$status" -eq 0 ] && echo passed || echo "exit $status") in $(( $(date +%s) - t0 ))s, daemons stopped"
  exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM
fail() { echo "slurm stage: FAIL: $*"; status=1; exit 1; }
cskip() { echo "slurm stage: SKIPPED: $*"; for f in "$D"/log/*.log; do [ -f "$f" ] && { echo "---- $f"; tail -n 15 "$f"; }; done; status=77; exit 77; }

cpus=$(nproc); [ "$cpus" -gt 2 ] && cpus=2
# two free ports next to each other (nothing answers on them), for slurmctld and slurmd
port=$(( 20000 + $$ % 20000 ))
for _ in $(seq 1 20); do
  { (exec 3<>"/dev/tcp/127.0.0.1/$port") || (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))"); } 2>/dev/null || break
  port=$(( port + 2 ))
done
key=/etc/munge/munge.key
if [ ! -s "$key" ]; then dd if=/dev/urandom of="$D/munge.key" bs=1 count=128 2>/dev/null; else cp "$key" "$D/munge.key"; fi
chmod 600 "$D/munge.key"
munged --force --socket="$D/munge.sock" --key-file="$D/munge.key" --pid-file="$D/munged.pid" \
  --log-file="$D/log/munged.log" --seed-file="$D/munged.seed" 2>"$D/log/munged.err" && started+=(munged) \
  || { cat "$D/log/munged.err"; cskip "munged does not start"; }
cat > "$SLURM_CONF" <<EOF
ClusterName=tenpakci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge.sock
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
NodeName=tenpakci1 NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=tenpakci1 Default=YES MaxTime=10 State=UP
EOF
slurmctld -c -f "$SLURM_CONF" 2>"$D/log/slurmctld.err" && started+=(slurmctld) || { cat "$D/log/slurmctld.err"; cskip "slurmctld does not start"; }
slurmd -N tenpakci1 -f "$SLURM_CONF" 2>"$D/log/slurmd.err" && started+=(slurmd) || { cat "$D/log/slurmd.err"; cskip "slurmd does not start"; }
up=0
for _ in $(seq 1 60); do
  [ "$(timeout 5 sinfo -h -N -o %T 2>/dev/null)" = idle ] && { up=1; break; }
  sleep 0.5
done
[ "$up" = 1 ] || cskip "the node did not come up idle within 30 s (sinfo: $(timeout 5 sinfo -h -N -o '%T %E' 2>&1))"
echo "slurm stage: cluster up in $(( $(date +%s) - t0 ))s: 1 node, $cpus CPUs, ports $port/$((port + 1)) ($(slurmctld -V))"

# wait (bounded) until none of the given jobs is pending or running
wait_jobs() {
  local limit=$1; shift
  local end=$(( $(date +%s) + limit ))
  while [ "$(date +%s)" -lt "$end" ]; do
    [ -z "$(timeout 10 squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] && return 0
    sleep 1
  done
  timeout 10 squeue
  return 1
}
# (every client call is bounded: a client waits for a controller that is not answering)
state() { timeout 10 scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2; }
reason() { timeout 10 scontrol show job "$1" 2>/dev/null | grep -o 'Reason=[A-Za-z_]*' | head -n 1 | cut -d= -f2; }
M=reports/bench-matrix-ci.json
submit() { timeout 60 bash ci/slurm/submit.sh --tenpak "$T" --matrix "$M" --results "$D/results" --bench-args --quick-roofline "$@" | tail -n 1; }

# -- 1. the whole array
line=$(submit --cpus-per-task=1) || fail "submit"
eval "$line"  # array= merge= missing= shards= results=
echo "slurm stage: array $array ($shards tasks), merge $merge, missing-shard report $missing"
wait_jobs 120 "$array" "$merge" "$missing" || fail "jobs still queued after 120 s"
for i in $(seq 1 "$shards"); do
  [ "$(state "${array}_$i")" = COMPLETED ] || fail "array task $i: $(state "${array}_$i")"
done
[ "$(state "$merge")" = COMPLETED ] || fail "the afterok merge job: $(state "$merge") ($(reason "$merge"))"
[ "$(state "$missing")" = CANCELLED ] && [ "$(reason "$missing")" = DependencyNeverSatisfied ] \
  || fail "the afternotok job should be removed: $(state "$missing") $(reason "$missing")"
run="$D/results/run-$array"
python3 - "$run" "$array" "$shards" <<'PY' || fail "shard or merged results"
import json, os, sys
run, array, shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = []
for i in range(1, shards + 1):
    d = json.load(open(f"{run}/shard-{i}.json"))
    m = d["context"]["matrix"]
    assert m["name"] == "ci-tiny" and m["shard_index"] == i and m["shard_count"] == shards and m["run_id"] == array, m
    ran = [n for c in m["cells"] for n in c["ran"]]
    assert ran and sorted(ran) == sorted({b["run_name"] for b in d["benchmarks"]}), (i, ran)
    assert all(b["real_time"] > 0 and b["cell"] == i - 1 for b in d["benchmarks"])
    names += ran
assert len(names) == len(set(names)) == 6, names
d = json.load(open(f"{run}/merged/merged.json"))
assert d["complete"] and d["missing_shards"] == 0 and len(d["machines"]) == 1, d["machines"]
assert d["matrix_runs"] == [{"matrix": "ci-tiny", "sha256": d["matrix_runs"][0]["sha256"], "run_id": array,
                             "shard_count": shards, "present": list(range(1, shards + 1)), "missing": []}], d["matrix_runs"]
rows = [b["name"] for b in d["benchmarks"]]
assert sorted(rows) == sorted(names) and rows[0].startswith("gemv/int4_g128/"), rows
md = open(f"{run}/merged/MERGED.md").read()
for b in d["benchmarks"]:
    pm = b["per_machine"][0]
    assert f"| {b['name']}{' (baseline)' if b['baseline'] else ''} | {pm['real_time_ms']:.4f} ms, {pm['gb_per_s']:.2f} GB/s |" in md, b
    if b["name"].startswith("gemv/int4"):
        r = pm["vs_baseline"][0]
        assert r["baseline"].startswith("gemv/f32/openblas/") and r["speedup"] > 0
        assert f"| {b['name']} | {r['baseline']} | {r['speedup']:.2f}x |" in md
for f in ("merged.png", "merged.svg"):
    assert os.path.getsize(f"{run}/merged/{f}") > 1000, f
print("slurm stage: merged table")
print("\n".join(l for l in md.splitlines() if l.startswith("| ")))
PY
grep -q "merged 4 file(s), 1 machine(s), 6 benchmark(s)" "$D/results/slurm-$merge-merge.out" || fail "merge job log"

# -- 2. one task cancelled: no partial table, the missing shard named
line=$(submit --cpus-per-task=1 --hold) || fail "submit (held)"
eval "$line"
timeout 10 scancel "${array}_3" || fail "scancel task 3"
timeout 10 scontrol release "$array" || fail "release the array"
wait_jobs 120 "$array" "$merge" "$missing" || fail "jobs still queued after 120 s (cancelled task)"
# a pending task cancelled leaves the array without a record of it (or one CANCELLED); the rest ran
case "$(state "${array}_3")" in ""|CANCELLED) ;; *) fail "task 3 should be cancelled: $(state "${array}_3")" ;; esac
for i in 1 2 4; do [ "$(state "${array}_$i")" = COMPLETED ] || fail "array task $i: $(state "${array}_$i")"; done
[ "$(state "$merge")" = CANCELLED ] && [ "$(reason "$merge")" = DependencyNeverSatisfied ] \
  || fail "the afterok merge should be removed: $(state "$merge") $(reason "$merge")"
[ "$(state "$missing")" = FAILED ] || fail "the missing-shard report should run and exit 1: $(state "$missing")"
out="$D/results/slurm-$missing-merge-missing.out"
grep -q "shard 3 of 4 missing (present: 1, 2, 4)" "$out" || { cat "$out"; fail "the missing shard is not named"; }
grep -q "run $array" "$out" || fail "the run is not named"
[ -e "$D/results/run-$array/merged/MERGED.md" ] && fail "a partial table was written"
ls "$D/results/run-$array"/shard-*.json | wc -l | grep -qx 3 || fail "three shard results expected"
echo "slurm stage: cancelled task 3 -> $(grep -o 'incomplete: .*' "$out")"
status=0

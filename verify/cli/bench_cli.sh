#!/usr/bin/env bash
# tenpak bench: Google Benchmark's JSON schema (what compare.py reads), CSV, sharding.
set -u
T="$1"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
F='^(gemv/int4_g128/cpu|gemv/f32/openblas)/4096x4096$|^dequant/int4_g64/cpu/4096x4096$'
"$T" bench --filter "$F" --min-time 0.01 --repetitions 3 --quick-roofline --json "$tmp/b.json" > "$tmp/out.txt" || fail "bench exited $?"
grep -q 'speed-up vs baselines' "$tmp/out.txt" || fail "no speed-up section"
python3 - "$tmp/b.json" <<'PY' || fail "bench JSON schema"
import json, sys
d = json.load(open(sys.argv[1]))
ctx = d["context"]
for k in ("date", "host_name", "num_cpus", "mhz_per_cpu", "caches", "library_build_type"):
    assert k in ctx, k
assert ctx["library_build_type"] in ("release", "debug")
bs = d["benchmarks"]
it = [b for b in bs if b["run_type"] == "iteration"]
ag = [b for b in bs if b["run_type"] == "aggregate"]
assert len(it) == 9, len(it)
assert {b["aggregate_name"] for b in ag} >= {"mean", "median", "stddev"}
for b in bs:
    for k in ("name", "run_name", "run_type", "repetitions", "iterations", "real_time", "cpu_time", "time_unit"):
        assert k in b, k
    assert b["time_unit"] == "ns" and b["real_time"] > 0
for b in it:
    assert "repetition_index" in b and "bytes_per_second" in b and "items_per_second" in b
names = {b["run_name"] for b in bs}
assert names == {"gemv/int4_g128/cpu/4096x4096", "gemv/f32/openblas/4096x4096", "dequant/int4_g64/cpu/4096x4096"}, names
assert any("roofline_fraction" in b for b in it)
PY
# Google Benchmark's own compare tool reads two runs (Debian's libbenchmark-tools)
# (Debian's own python3 carries python3-scipy, which compare.py imports)
DPY=/usr/bin/python3
if [ -f /usr/share/benchmark/compare.py ] && $DPY -c 'import scipy' 2>/dev/null; then
  "$T" bench --filter "$F" --min-time 0.01 --repetitions 3 --quick-roofline --json "$tmp/b2.json" >/dev/null || fail "second bench"
  $DPY /usr/share/benchmark/compare.py benchmarks "$tmp/b.json" "$tmp/b2.json" > "$tmp/cmp.txt" || fail "compare.py rejected the JSON"
  grep -q 'gemv/int4_g128/cpu/4096x4096_median' "$tmp/cmp.txt" || fail "compare.py output"
else
  echo "note: compare.py or scipy missing, Google Benchmark compare check skipped"
fi
"$T" bench --filter "$F" --min-time 0.01 --repetitions 1 --quick-roofline --format csv > "$tmp/b.csv" || fail "csv"
head -n1 "$tmp/b.csv" | grep -q '^name,iterations,real_time,cpu_time,time_unit,bytes_per_second' || fail "csv header"
[ "$(wc -l < "$tmp/b.csv")" -eq 4 ] || fail "csv rows"
# shards 1/2 and 2/2 cover the matrix exactly once
"$T" bench --filter "$F" --min-time 0.01 --repetitions 1 --quick-roofline --format csv --shard 1/2 | tail -n +2 > "$tmp/s1"
"$T" bench --filter "$F" --min-time 0.01 --repetitions 1 --quick-roofline --format csv --shard 2/2 | tail -n +2 > "$tmp/s2"
[ "$(cat "$tmp/s1" "$tmp/s2" | cut -d, -f1 | sort | uniq | wc -l)" -eq 3 ] || fail "shards"
# a matrix spread over machines (here: two shards) merges back into one table
"$T" bench --filter "$F" --min-time 0.01 --repetitions 1 --quick-roofline --shard 1/2 --json "$tmp/j1.json" >/dev/null || fail "shard json 1"
"$T" bench --filter "$F" --min-time 0.01 --repetitions 1 --quick-roofline --shard 2/2 --json "$tmp/j2.json" >/dev/null || fail "shard json 2"
"$T" report merge --out "$tmp/m" "$tmp/j1.json" "$tmp/j2.json" 2>/dev/null || fail "merge"
# (both shards ran on this machine: one column; the INT4 GEMV's ratio to OpenBLAS measured across the shards)
sed -n '/^## Median time/,/^## /p' "$tmp/m/MERGED.md" | grep -c '^| [a-z]*/' | grep -qx 3 || fail "merged table rows"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['machines'])==1 and len(d['machines'][0]['sources'])==2 and len(d['benchmarks'])==3" "$tmp/m/merged.json" || fail "merged json"
"$T" report merge --out "$tmp/m2" "$tmp/b.csv" 2>/dev/null; [ $? -eq 1 ] || fail "merge of a non-JSON must exit 1"
"$T" bench --shard 3/2 >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad shard must exit 2"
"$T" bench --filter nothing-matches --quick-roofline >/dev/null 2>&1; [ $? -eq 1 ] || fail "no match must exit 1"
echo "bench_cli: ok"

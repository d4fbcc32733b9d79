#!/usr/bin/env bash
# tenpak bench --matrix and tenpak report merge: the shard split covers every (kernel, shape) of
# a matrix exactly once for any shard count; the shards of reports/bench-matrix-ci.json merge into
# one table with each kernel's ratio to its baseline on the same machine only; merge refuses mixed
# tenpak versions or matrices (unless --allow-mixed) and names missing shards (unless --allow-missing).
set -u
T="$1"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$(dirname "$0")/../.." || fail "cd"
M=reports/bench-matrix-ci.json

# -- the split: every kernel of the plan in exactly one shard, for 1..5 shards
cat > "$tmp/split.json" <<'EOF'
{"name": "split", "benchmarks": ["^gemv/", "^dequant/int4", "^gemv/int4_g128/"], "shapes": ["64x128", "128x256", "4096"],
 "backends": ["cpu", "openblas", "memcpy"], "repetitions": 1, "min_time": 0.001}
EOF
plan() { "$T" bench --matrix "$tmp/split.json" --plan "$@" | grep '^cell ' ; }
plan --shard 1/1 | sed 's/^[^:]*: [^:]*://' | tr ' ' '\n' | grep / | sort > "$tmp/all"
[ "$(wc -l < "$tmp/all")" -ge 10 ] || fail "the split matrix plans too few kernels"
[ "$(sort -u "$tmp/all" | wc -l)" -eq "$(wc -l < "$tmp/all")" ] || fail "a kernel in two cells"
for n in 2 3 4 5; do
  plan --shard 1/$n > "$tmp/p$n"
  [ "$(grep -c '^cell ' "$tmp/p$n")" -eq 9 ] || fail "9 cells (3 regexes x 3 shapes) expected"
  : > "$tmp/u$n"
  for i in $(seq 1 $n); do
    # the cells of shard i, each listed with its kernels
    grep " shard $i/$n:" "$tmp/p$n" | sed 's/^[^:]*: [^:]*://' | tr ' ' '\n' | grep / >> "$tmp/u$n"
  done
  sort "$tmp/u$n" | cmp -s - "$tmp/all" || fail "shards of $n do not cover the matrix exactly once"
done
# the split is the file's: a kernel's cell does not depend on the shard count
[ "$(plan --shard 1/3 | cut -d' ' -f2 | tr '\n' ' ')" = "$(plan --shard 1/2 | cut -d' ' -f2 | tr '\n' ' ')" ] || fail "cells renumbered"

# -- bad usage
"$T" bench --matrix $M --shard 1/3 >/dev/null 2>"$tmp/err"; [ $? -eq 2 ] || fail "--shard N other than the matrix's must exit 2"
grep -q '4 shards' "$tmp/err" || fail "the shard-count refusal must name the matrix's count"
"$T" bench --matrix $M >/dev/null 2>"$tmp/err"; [ $? -eq 2 ] || fail "a sharded matrix without --shard must exit 2"
"$T" bench --matrix $M --shard 1/4 --filter gemv >/dev/null 2>&1; [ $? -eq 2 ] || fail "--filter with --matrix must exit 2"
echo '{"name": "x"}' > "$tmp/bad1.json"
"$T" bench --matrix "$tmp/bad1.json" --plan >/dev/null 2>"$tmp/err"; [ $? -eq 2 ] || fail "a matrix without benchmarks must exit 2"
grep -q benchmarks "$tmp/err" || fail "the refusal must name the missing key"
echo '{"benchmarks": ["^gemv/"], "shapes": ["12xx4"]}' > "$tmp/bad2.json"
"$T" bench --matrix "$tmp/bad2.json" --plan >/dev/null 2>&1; [ $? -eq 2 ] || fail "a bad shape must exit 2"
"$T" bench --plan >/dev/null 2>&1; [ $? -eq 2 ] || fail "--plan without --matrix must exit 2"

# -- the CI matrix, four shards of one run
for i in 1 2 3 4; do
  SLURM_ARRAY_JOB_ID=77 "$T" bench --matrix $M --shard $i/4 --quick-roofline --json "$tmp/s$i.json" > "$tmp/o$i" || fail "shard $i exited $?"
done
python3 - "$tmp" <<'PY' || fail "shard JSONs"
import json, sys
t = sys.argv[1]
names = []
for i in range(1, 5):
    d = json.load(open(f"{t}/s{i}.json"))
    m = d["context"]["matrix"]
    assert m["name"] == "ci-tiny" and m["shard_index"] == i and m["shard_count"] == 4 and m["run_id"] == "77", m
    assert len(m["sha256"]) == 64 and m["cell_count"] == 4
    assert [c["cell"] for c in m["cells"]] == [i - 1], m["cells"]
    ran = [n for c in m["cells"] for n in c["ran"]]
    got = sorted({b["run_name"] for b in d["benchmarks"]})
    assert sorted(ran) == got, (ran, got)
    for b in d["benchmarks"]:
        assert b["cell"] == i - 1 and b["op"] in ("gemv", "dequant") and b["shape"] in ("256x512", "512x1024")
        assert b["baseline"] == (b["backend"] == "openblas"), b
        assert b["repetitions"] == 1
    ctx = d["context"]
    for k in ("host_name", "cpu_model", "isa", "library_build", "tenpak_version"):
        assert ctx.get(k), k
    names += got
assert len(names) == len(set(names)) == 6, names
PY

# -- merge: one machine, complete, the report rows in the matrix's order, ratios on that machine
"$T" report merge --out "$tmp/m" "$tmp"/s[1-4].json 2>"$tmp/err" || { cat "$tmp/err"; fail "merge exited $?"; }
for f in MERGED.md merged.json merged.png merged.svg; do [ -s "$tmp/m/$f" ] || fail "merge wrote no $f"; done
python3 - "$tmp/m/merged.json" "$tmp/m/MERGED.md" <<'PY' || fail "merged table"
import json, sys
d = json.load(open(sys.argv[1])); md = open(sys.argv[2]).read()
assert d["complete"] and d["missing_shards"] == 0 and not d["mixed"], d
assert len(d["machines"]) == 1 and len(d["machines"][0]["sources"]) == 4
assert d["matrix_runs"][0]["present"] == [1, 2, 3, 4] and d["matrix_runs"][0]["missing"] == []
rows = [b["name"] for b in d["benchmarks"]]
assert rows == ["gemv/int4_g128/cpu/256x512", "gemv/int4_g128/cpu/512x1024", "gemv/f32/openblas/256x512",
                "gemv/f32/openblas/512x1024", "dequant/int4_g64/cpu/256x512", "dequant/int4_g64/cpu/512x1024"], rows
by = {b["name"]: b["per_machine"][0] for b in d["benchmarks"]}
for s in ("256x512", "512x1024"):
    k, b = by[f"gemv/int4_g128/cpu/{s}"], by[f"gemv/f32/openblas/{s}"]
    v = k["vs_baseline"]
    assert len(v) == 1 and v[0]["baseline"] == f"gemv/f32/openblas/{s}", v
    assert abs(v[0]["speedup"] - b["real_time_ms"] / k["real_time_ms"]) < 1e-9 * v[0]["speedup"]
    assert f"| gemv/int4_g128/cpu/{s} | gemv/f32/openblas/{s} | {v[0]['speedup']:.2f}x |" in md
    assert f"| gemv/int4_g128/cpu/{s} | {k['real_time_ms']:.4f} ms, {k['gb_per_s']:.2f} GB/s |" in md
assert "vs_baseline" not in by["dequant/int4_g64/cpu/256x512"]
assert "Incomplete" not in md and "Mixed" not in md
PY

# -- missing shards: named, no partial table unless asked
"$T" report merge --out "$tmp/miss" "$tmp/s1.json" "$tmp/s3.json" 2>"$tmp/err"; [ $? -eq 1 ] || fail "missing shards must exit 1"
grep -q "shards 2, 4 of 4 missing (present: 1, 3)" "$tmp/err" || { cat "$tmp/err"; fail "missing shards not named"; }
grep -q "run 77" "$tmp/err" || fail "the run id must be named"
[ -e "$tmp/miss/MERGED.md" ] && fail "a partial table was written without --allow-missing"
"$T" report merge --allow-missing --out "$tmp/miss" "$tmp/s1.json" "$tmp/s3.json" 2>/dev/null || fail "--allow-missing exited $?"
grep -q "Incomplete (merged with --allow-missing)\*\*: matrix 'ci-tiny'.*shards 2, 4 of 4 missing" "$tmp/miss/MERGED.md" || fail "partial table not marked"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert not d['complete'] and d['missing_shards']==2 and d['matrix_runs'][0]['missing']==[2,4]" "$tmp/miss/merged.json" || fail "partial JSON"

# -- mixed tenpak versions or matrices: refused unless --allow-mixed
python3 - "$tmp" <<'PY'
import json, sys
t = sys.argv[1]
d = json.load(open(f"{t}/s1.json")); d["context"]["tenpak_version"] = "0.0.1-other"
json.dump(d, open(f"{t}/v1.json", "w"))
PY
"$T" report merge --out "$tmp/mix" "$tmp/v1.json" "$tmp"/s[2-4].json 2>"$tmp/err"; [ $? -eq 1 ] || fail "mixed versions must exit 1"
grep -q "different tenpak versions" "$tmp/err" && grep -q "0.0.1-other ($tmp/v1.json)" "$tmp/err" && grep -q -- --allow-mixed "$tmp/err" \
  || { cat "$tmp/err"; fail "the version refusal must name the versions, the files and --allow-mixed"; }
"$T" report merge --allow-mixed --out "$tmp/mix" "$tmp/v1.json" "$tmp"/s[2-4].json 2>/dev/null || fail "--allow-mixed exited $?"
grep -q "Mixed inputs (merged with --allow-mixed)" "$tmp/mix/MERGED.md" || fail "mixed table not marked"
"$T" bench --filter '^dequant/int4_g64/cpu/4096x4096$' --min-time 0.01 --repetitions 1 --quick-roofline --json "$tmp/plain.json" >/dev/null || fail "plain bench"
"$T" report merge --out "$tmp/mix2" "$tmp/plain.json" "$tmp"/s[1-4].json 2>"$tmp/err"; [ $? -eq 1 ] || fail "a plain run beside a matrix must exit 1"
grep -q "different matrix files" "$tmp/err" || fail "the matrix refusal must say so"
sed 's/"min_time": 0.01/"min_time": 0.02/' $M > "$tmp/other.json"
"$T" bench --matrix "$tmp/other.json" --shard 1/4 --quick-roofline --json "$tmp/o1.json" >/dev/null || fail "other matrix"
"$T" report merge --out "$tmp/mix3" "$tmp/o1.json" "$tmp"/s[2-4].json 2>"$tmp/err"; [ $? -eq 1 ] || fail "two matrices must exit 1"
grep -q "different matrix files" "$tmp/err" || fail "two matrices: the refusal must say so"

# -- two hosts: columns per machine, ratios never across them (host B has no baseline)
python3 - "$tmp" <<'PY'
import json, sys
t = sys.argv[1]
for i in range(1, 5):
    d = json.load(open(f"{t}/s{i}.json"))
    d["context"]["host_name"] = "hostb"; d["context"]["cpu_model"] = "Other CPU"; d["context"]["isa"] = "avx2"
    d["benchmarks"] = [b for b in d["benchmarks"] if b["backend"] != "openblas"]
    for b in d["benchmarks"]: b["real_time"] *= 2
    json.dump(d, open(f"{t}/b{i}.json", "w"))
PY
"$T" report merge --out "$tmp/two" "$tmp"/s[1-4].json "$tmp"/b[1-4].json 2>/dev/null || fail "two-host merge"
python3 - "$tmp/two/merged.json" "$tmp/two/MERGED.md" <<'PY' || fail "two-host table"
import json, sys
d = json.load(open(sys.argv[1])); md = open(sys.argv[2]).read()
ms = d["machines"]
assert len(ms) == 2 and ms[1]["host_name"] == "hostb" and ms[1]["processor"] == "Other CPU" and ms[1]["isa"] == "avx2", ms
by = {b["name"]: b["per_machine"] for b in d["benchmarks"]}
k = by["gemv/int4_g128/cpu/256x512"]
assert "vs_baseline" in k[0] and "vs_baseline" not in k[1], k
assert abs(k[1]["real_time_ms"] - 2 * k[0]["real_time_ms"]) < 1e-9 * k[1]["real_time_ms"]
assert "| M2 | hostb | Other CPU | avx2 |" in md
r = [l for l in md.splitlines() if l.startswith("| gemv/int4_g128/cpu/256x512 | gemv/f32/openblas/256x512 |")]
assert len(r) == 1 and r[0].endswith("x | - |"), r
PY
echo "bench_matrix_cli: ok"

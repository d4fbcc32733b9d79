#!/usr/bin/env bash
# tenpak report on the reduced CI config: it must write the markdown, the JSON and the plot, and
# every number in the markdown's tables must be present in the JSON it came from.
set -u
T="$1"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$(dirname "$0")/../.." || fail "cd"
"$T" report --config reports/ci.json --out "$tmp/r" --max-tokens 300 2> "$tmp/log" || { cat "$tmp/log"; fail "report exited $?"; }
for f in EXPERIMENT_LOG.md results/report.json plots/pareto.png plots/pareto.svg plots/kld.png plots/kld.svg; do
  [ -s "$tmp/r/$f" ] || fail "missing $f"
done
ls "$tmp/r/artifacts" | grep -q . && fail "artifacts left behind without --keep-artifacts"
python3 - "$tmp/r/EXPERIMENT_LOG.md" "$tmp/r/results/report.json" <<'PY' || fail "a markdown number is not in the JSON"
import json, re, sys
md = open(sys.argv[1]).read()
js = json.load(open(sys.argv[2]))
nums = []
def walk(x):
    if isinstance(x, bool): return
    if isinstance(x, (int, float)): nums.append(float(x))
    elif isinstance(x, dict): [walk(v) for v in x.values()]
    elif isinstance(x, list): [walk(v) for v in x]
walk(js)
checked = 0
lines = md.splitlines()
for i, line in enumerate(lines):
    if not line.startswith("|") or line.startswith("|---"): continue
    if i + 1 < len(lines) and lines[i + 1].startswith("|---"): continue   # a header row
    for cell in line.strip("|").split("|"):
        cell = cell.strip()
        if not re.fullmatch(r"[-+0-9., x%\[\]]+", cell): continue   # names, specs, statuses: not measurements
        for tok in re.findall(r"[-+]?\d+(?:\.\d+)?", cell):
            dec = len(tok.split(".")[1]) if "." in tok else 0
            v = float(tok)
            if not any(abs(round(n, dec) - v) <= 0.5 * 10 ** -dec + 1e-12 for n in nums):
                sys.exit(f"{tok!r} in row {line!r} has no source in the JSON")
            checked += 1
for m in re.finditer(r"baseline PPL ([\d.]+)", md):
    v = float(m.group(1)); dec = len(m.group(1).split(".")[1])
    assert any(abs(round(n, dec) - v) < 10 ** -dec for n in nums), m.group(0)
    checked += 1
assert checked > 50, checked
assert len(js["rows"]) == 6 and len(js["baselines"]) == 2
assert all(r["artifact_bytes"] > 0 and r["ppl"] > 0 for r in js["rows"])
# the paired statistics of every row, and a status from the PPL delta's interval
for r in js["rows"]:
    lo, hi = r["ppl_delta_percent_ci95"]
    assert lo <= r["ppl_delta_percent"] <= hi and r["kld_mean_ci95"][0] <= r["kld_mean"] <= r["kld_mean_ci95"][1], r
    assert 0 < r["kld_mean"] and r["kld_p99"] <= r["kld_max"] and 0 < r["top1_percent"] <= 100, r
    st = "PASS" if hi < 1 else "FAIL" if lo >= 1 else "INCONCLUSIVE"
    assert f"| {st} (" in md, st
assert "![KLD vs bits/weight, one line per codec family](plots/kld.png)" in md
assert "| KLD mean | KLD p99 | top-1 % | status |" in md
# the Pareto view: per model and dataset, each bits/weight point's best row at or below it by KLD
assert "## Pareto: the best codec at each bits/weight" in md and "dominated by an uncalibrated one" in md
assert len(js["pareto"]) == 2 and js["dominated_calibrated"] == [], js["dominated_calibrated"]
for g in js["pareto"]:
    rows = [r for r in js["rows"] if r["model"] == g["model"] and r["dataset"] == g["dataset"]]
    assert g["metric"] == "kld_mean" and len(g["points"]) == len({round(r["bits_per_weight"], 9) for r in rows})
    for p in g["points"]:
        best = min((r for r in rows if r["bits_per_weight"] <= p["bits_per_weight"] + 1e-9), key=lambda r: r["kld_mean"])
        assert p["best_codec"] == best["codec"] and p["value"] == best["kld_mean"], (p, best)
print(f"report_cli: {checked} numbers in the markdown all come from the JSON")
PY
"$T" report --config "$tmp/nope.json" --out "$tmp/x" 2>"$tmp/err"; [ $? -eq 1 ] || fail "missing config must exit 1"
grep -q nope.json "$tmp/err" || fail "error must name the config"
echo '{"models": ["gpt2-mini"], "datasets": [], "codecs": []}' > "$tmp/bad.json"
"$T" report --config "$tmp/bad.json" --out "$tmp/x" 2>/dev/null; [ $? -eq 1 ] || fail "empty config must exit 1"
echo "report_cli: ok"

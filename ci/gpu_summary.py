#!/usr/bin/env python3
"""Summary of a GPU bench run (ci/gpu.sh): every cuda / cuda-simt / cublas result as time, GB/s,
fraction of the device-to-device copy bandwidth measured in the same run (copy/d2d/cuda, bytes
read + written) and speed-up over cuBLAS FP16 on the same op and shape; then issue 7's targets.
usage: gpu_summary.py bench.json [verify.txt]"""
import json
import re
import sys


def main():
    bench = json.load(open(sys.argv[1]))
    rows = {}
    for b in bench["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median":
            rows[b["run_name"]] = b
        elif b.get("run_type") == "iteration" and b["run_name"] not in rows and bench_reps(bench) == 1:
            rows[b["run_name"]] = b
    copy = [r for n, r in rows.items() if n.startswith("copy/d2d/cuda/")]
    bw = copy[0]["bytes_per_second"] if copy else float("nan")
    ctx = bench.get("context", {})
    print(f"# GPU bench summary\n\nrun: {ctx.get('date', '?')} on host {ctx.get('host_name', '?')}; "
          f"device-to-device copy bandwidth (read + written): {bw / 1e9:.1f} GB/s\n")
    if len(sys.argv) > 2:
        txt = open(sys.argv[2]).read()
        m = re.search(r"(\d+) passed, (\d+) failed", txt)
        print(f"verify --self-test (cuda, cuda-simt, cublas kernels): "
              f"{m.group(0) if m else '?'}; FAIL lines: {txt.count(' FAIL')}\n")
    print("| kernel | median us | GB/s | % of copy | vs cuBLAS FP16 |")
    print("| --- | ---: | ---: | ---: | ---: |")

    def key(n):
        op, var, be, shape = n.split("/")
        return (op, shape, var, be)

    for n in sorted(rows, key=key):
        r = rows[n]
        op, var, be, shape = n.split("/")
        t = r["real_time"] / 1e3
        gbs = r.get("bytes_per_second", 0) / 1e9
        frac = r.get("bytes_per_second", 0) / bw if bw == bw and bw > 0 else float("nan")
        base = rows.get(f"{op}/f16/cublas/{shape}")
        sp = f"{base['real_time'] / r['real_time']:.2f}x" if base and be != "cublas" else ""
        print(f"| {n} | {t:.1f} | {gbs:.0f} | {100 * frac:.1f}% | {sp} |")
    print("\n## Issue 7 targets (INT4 g128, fp16 activations, backend cuda)\n")
    for shape in ("8192x8192", "28672x8192"):
        r = rows.get(f"gemv/int4_g128_f16a/cuda/{shape}")
        base = rows.get(f"gemv/f16/cublas/{shape}")
        if r and base:
            frac = r["bytes_per_second"] / bw
            sp = base["real_time"] / r["real_time"]
            print(f"- GEMV {shape}: {100 * frac:.1f}% of copy bandwidth (target >= 80%: "
                  f"{'met' if frac >= 0.8 else 'missed'}), {sp:.2f}x cuBLAS FP16 (target >= 3x: "
                  f"{'met' if sp >= 3 else 'missed'})")
    for shape in ("8192x8192x16", "28672x8192x16"):
        r = rows.get(f"gemm/int4_g128_f16a/cuda/{shape}")
        base = rows.get(f"gemm/f16/cublas/{shape}")
        if r and base:
            sp = base["real_time"] / r["real_time"]
            print(f"- GEMM {shape}: {sp:.2f}x cuBLAS FP16 (target >= 2.5x: {'met' if sp >= 2.5 else 'missed'})")


def bench_reps(bench):
    for b in bench["benchmarks"]:
        return b.get("repetitions", 1)
    return 1


if __name__ == "__main__":
    main()

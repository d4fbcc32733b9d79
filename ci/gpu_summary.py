#!/usr/bin/env python3
"""Summary of a GPU bench run (ci/gpu.sh): every cuda / cuda-simt / cublas result as time, GB/s,
fraction of the device-to-device copy bandwidth measured in the same run (copy/d2d/cuda, bytes
read + written) and speed-up over cuBLAS FP16 on the same op and shape; then the GPU targets.
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
    print("\n## Issue 7 targets (backend cuda)\n")
    for shape in ("8192x8192", "28672x8192"):
        r = rows.get(f"gemv/int4_g128_f16a/cuda/{shape}")
        base = rows.get(f"gemv/f16/cublas/{shape}")
        if r and base:
            frac = r["bytes_per_second"] / bw
            sp = base["real_time"] / r["real_time"]
            print(f"- GEMV {shape}: {100 * frac:.1f}% of copy bandwidth (target >= 80%: "
                  f"{'met' if frac >= 0.8 else 'missed'}), {sp:.2f}x cuBLAS FP16 (target >= 3x: "
                  f"{'met' if sp >= 3 else 'missed'})")
    for shape in ("8192x8192", "28672x8192"):
        ref = rows.get(f"gemv/int4_g128_f16a/cuda/{shape}")
        for g in (32, 64):
            r = rows.get(f"gemv/int4_g{g}_f16a/cuda/{shape}")
            if r and ref:
                q = r["bytes_per_second"] / ref["bytes_per_second"]
                print(f"- GEMV g{g} {shape}: {100 * r['bytes_per_second'] / bw:.1f}% of copy bandwidth, "
                      f"{q:.2f} of g128's fraction (target >= 0.85: {'met' if q >= 0.85 else 'missed'})")
    for shape in ("8192x8192x16", "28672x8192x16"):
        r = rows.get(f"gemm/int4_g128_f16a/cuda/{shape}")
        base = rows.get(f"gemm/f16/cublas/{shape}")
        if r and base:
            sp = base["real_time"] / r["real_time"]
            print(f"- GEMM {shape}: {sp:.2f}x cuBLAS FP16 (target >= 2.5x: {'met' if sp >= 2.5 else 'missed'})")
    sh = "8192x8192x8192"
    sp24 = rows.get(f"gemm/sparse24_f16_f16a/cuda/{sh}")
    dense = rows.get(f"gemm/f16/cublas/{sh}")
    lt = rows.get(f"gemm/sparse24_f16_f16a_o16/cusparselt/{sh}")
    if sp24 and dense:
        sp = dense["real_time"] / sp24["real_time"]
        line = f"- 2:4 sparse GEMM {sh} fp16: {sp:.2f}x cuBLAS dense (target >= 1.3x: {'met' if sp >= 1.3 else 'missed'})"
        if lt:
            q = lt["real_time"] / sp24["real_time"]
            line += (f"; {q:.2f}x cuSPARSELt's speed (fp16 output; target >= 0.9x: "
                     f"{'met' if q >= 0.9 else 'missed'})")
        print(line)
    best = None
    for n, r in rows.items():
        if n.startswith("rans_dec/") and "/cuda" in n and "chunks" in n:
            if best is None or r["bytes_per_second"] > best[1]["bytes_per_second"]:
                best = (n, r)
    if best:
        g = best[1]["bytes_per_second"] / 1e9
        print(f"- rANS GPU decode: {g:.0f} GB/s of decoded output at best ({best[0]}; target >= 100: "
              f"{'met' if g >= 100 else 'missed'})")
    for n, r in sorted(rows.items()):
        m = re.match(r"gemv/lora_int4_g128_r16/cuda/(.+)$", n)
        base = rows.get(f"gemv/int4_g128/cuda/{m.group(1)}") if m else None
        if base:
            over = r["real_time"] / base["real_time"] - 1
            print(f"- fused LoRA r16 on INT4 g128 {m.group(1)}: {100 * over:+.1f}% over the INT4 GEMV alone "
                  f"(same fp32 activations; target <= +15%: {'met' if over <= 0.15 else 'missed'})")


def bench_reps(bench):
    for b in bench["benchmarks"]:
        return b.get("repetitions", 1)
    return 1


if __name__ == "__main__":
    main()

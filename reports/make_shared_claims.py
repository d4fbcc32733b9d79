#!/usr/bin/env python3
"""Writes claims/shared-models.json from a `tenpak report` results file: one claim per codec and
shared model on WikiText-2, whose claimed numbers are this project's own measurements, so that
`tenpak claims verify claims/shared-models.json` re-checks them on any machine.

    python3 reports/make_shared_claims.py reports/results/report.json > claims/shared-models.json
"""
import json
import sys

rep = json.load(open(sys.argv[1]))
proto = rep["protocol"]
prov = rep["provenance"]
data = {d["name"]: d for d in rep["datasets"]}
claims = []
for r in rep["rows"]:
    if r["dataset"] != "WikiText-2 test":
        continue
    claims.append({
        "name": r.get("name", r["codec"]),
        "model": r["model"],
        "model_dir": r["model"],
        "codec": r["codec"],
        "select": r["select"],
        "dataset": r["dataset"],
        "data": data[r["dataset"]]["path"],
        "protocol": {"name": proto["name"], "ctx": proto["ctx"], "stride": proto["stride"],
                     "max_tokens": proto["max_tokens"]},
        "claimed": {"ratio_fp32": round(r["ratio_fp32"], 4), "ppl_delta_percent": round(r["ppl_delta_percent"], 4)},
        "tolerance": {"ratio_rel": 0.01, "ppl_delta_abs": 0.05},
        "source": "tenpak report, %s, commit %s (%s)" % (prov["date"], prov["git_commit"], prov["command"]),
    })
json.dump({"description": "This project's own measurements on the shared models, as claims: "
           "`tenpak claims verify claims/shared-models.json` re-runs each (compress + eval, "
           "WikiText-2 prefix of max_tokens tokens) and must find the same numbers.",
           "claims": claims}, sys.stdout, indent=2)
print()

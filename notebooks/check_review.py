"""Check an executed quarterly_review notebook against the run's own files,
so a notebook that drifts from the outputs fails CI.

    python3 notebooks/check_review.py EXECUTED.ipynb RUN_DIR
"""
import json
import sys
from pathlib import Path

nb = json.loads(Path(sys.argv[1]).read_text())
run = Path(sys.argv[2])
text = []
for c in nb["cells"]:
    for o in c.get("outputs", []):
        if o.get("output_type") == "error":
            sys.exit(f"a cell failed: {o.get('ename')}: {o.get('evalue')}")
        if "text" in o:
            text.append("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
        for kind in ("text/markdown", "text/plain"):
            v = o.get("data", {}).get(kind)
            if v:
                text.append("".join(v) if isinstance(v, list) else v)
out = "\n".join(text)
findings = json.loads((run / "findings.json").read_text())
icp = json.loads((run / "icp.json").read_text())
measurement = json.loads((run / "measurement.json").read_text())
problems = []


def want(s, why):
    if s not in out:
        problems.append(f"{why}: {s!r} not in the notebook's output")


if findings["readiness"]["ready"]:
    want("READY for review", "readiness")
else:
    want("NOT READY", "readiness")
    for g in findings["readiness"]["gates"]:
        if not g["passed"]:
            want(g["gate"], "a failed gate")
for kind in ("include", "exclude", "review"):
    for c in icp[kind]:
        want(f"{kind} {c['id']}", "a decision")


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


for so in measurement["band_outcomes"]:
    want(f"scoring {so['run_id']}", "an earlier scoring")
    for b in so["bands"]:
        want(f"{b['won']:,} ({pct(b['win_rate'])}", f"{b['band']} band's wins")
        want(f"{b['velocity_wins']:,} ({pct(b['velocity_win_rate'])}", f"{b['band']} band's velocity wins")
model = json.loads((run / "model.json").read_text())
want(model["model_id"], "the model id")
ev = model["evaluation"]
want(f"{ev['auc']:.3f}", "this run's holdout AUC")
want(f"{ev['auc_ci95'][0]:.3f}", "the low end of its interval")
if problems:
    sys.exit("the notebook disagrees with the run's files:\n  " + "\n  ".join(problems))
print(f"notebook checked against {run.name}: readiness, {sum(len(icp[k]) for k in ('include', 'exclude', 'review'))} decisions, "
      f"{sum(len(s['bands']) for s in measurement['band_outcomes'])} band outcomes")

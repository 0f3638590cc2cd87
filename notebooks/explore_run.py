# %% [markdown]
# # Explore an icp run
# A notebook in percent format (open it in Jupyter with jupytext, VS Code or
# run it as a script): `python3 notebooks/explore_run.py [RUN_DIR]`.
# Standard library only. It reads a run directory (default `reports/latest`)
# and shows the holdout evidence, the calibration table, the bands and the
# strongest model terms.

# %%
import csv
import json
import sys
from collections import Counter
from pathlib import Path

run = Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "reports/latest")
model = json.loads((run / "model.json").read_text())
ev = model["evaluation"]
print(f"run {run}  model {model['model_id']}")
print(f"velocity window: {model['velocity_window']['days']} days ({model['velocity_window']['source']})")
print(ev["verdict"])

# %% [markdown]
# ## Calibration on the holdout: predicted against observed, by decile

# %%
print(f"{'decile':>6} {'n':>6} {'predicted':>10} {'observed':>9}")
for b in ev["calibration"]:
    print(f"{b['decile']:>6} {b['n']:>6} {b['mean_predicted']:>10.3f} {b['observed_rate']:>9.3f}")

# %% [markdown]
# ## Holdout deals per score band

# %%
for b in ev["bands"]:
    cyc = b["median_cycle_days_won"]
    print(f"{b['band']:>7}: {b['deals']:>6} deals, win rate {b['win_rate']:.2f}, "
          f"velocity wins {b['velocity_win_share']:.2f}, median won cycle {cyc if cyc is not None else '-'}")

# %% [markdown]
# ## The strongest terms of the model (log-odds per unit of the feature)

# %%
spec = model["model"]["spec"]
coef = model["model"]["coefficients"]
def name(f):
    v = spec["variables"][f["var"]]["column"] if "var" in f else None
    k = f["kind"]
    if k == "level": return f"{v} = {f['level']}"
    if k == "bin": return f"{v} band {f['bin']}"
    if k == "interaction":
        it = spec["interactions"][f["index"]]
        return f"interaction {it['a']} x {it['b']}"
    return f"{v} ({k})"
for w, f in sorted(zip(coef, spec["features"]), key=lambda x: -abs(x[0]))[:15]:
    print(f"{w:+.3f}  {name(f)}")

# %% [markdown]
# ## Scores: accounts per band

# %%
with open(run / "scores.csv", newline="") as fh:
    bands = Counter(r["band"] for r in csv.DictReader(fh))
print(dict(bands))

# %% [markdown]
# # Reference: the `icp run` job as an analyst would write it in pandas + scikit-learn
# Used to compare speed and memory with the Rust pipeline (BENCHMARKS.md).
# `python3 notebooks/reference_pandas.py --data data/sample --out /tmp/refout`
# Reads accounts, opportunities and customers; labels closed deals (velocity
# win = won within the velocity window and not churned); time-based holdout;
# one-hot / quantile-bin / standardised features; logistic regression with C
# chosen by time-ordered CV; scores every account; writes scores.csv,
# segments/score_gte_*.csv and signals.csv. Prints wall seconds per stage.

# %%
import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, StandardScaler

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True, type=Path)
ap.add_argument("--out", required=True, type=Path)
args = ap.parse_args()

HOLDOUT_FRACTION = 0.2
MIN_LEVEL_COUNT = 30
CS = [0.001, 0.01, 0.1, 1.0, 10.0]
CV_MAX_DEALS = 100_000
THRESHOLDS = range(30, 100, 10)
ID_COLS = ["account_id", "account_name", "domain"]

t_start = time.perf_counter()
t_stage = t_start


def stage(name):
    global t_stage
    now = time.perf_counter()
    print(f"[{now - t_stage:8.2f} s] {name}")
    t_stage = now


# %% 1. Read and check
accounts = pd.read_csv(args.data / "accounts.csv", dtype={"account_id": "string"})
opps = pd.read_csv(args.data / "opportunities.csv", dtype={"account_id": "string"},
                   parse_dates=["created_date", "closed_date"])
customers = pd.read_csv(args.data / "customers.csv", dtype={"account_id": "string"},
                        parse_dates=["churn_date"])

n_acc = len(accounts)
accounts = accounts[accounts["account_id"].notna() & (accounts["account_id"] != "")]
accounts = accounts.drop_duplicates("account_id", keep="first").reset_index(drop=True)
known = pd.Index(accounts["account_id"])
dropped = {"accounts": n_acc - len(accounts)}
for name in ["opps", "customers"]:
    df = globals()[name]
    keep = df["account_id"].notna() & df["account_id"].isin(known)
    dropped[name] = int((~keep).sum())
    globals()[name] = df[keep].reset_index(drop=True)
print(f"read {n_acc:,} accounts, {len(opps) + dropped['opps']:,} opportunities, "
      f"{len(customers) + dropped['customers']:,} customers; dropped (missing or unknown "
      f"account_id, or duplicate account): {sum(dropped.values()):,} {dropped}")
stage("read")

# %% 2. Label closed deals
opps["outcome"] = opps["outcome"].str.strip().str.lower()
closed = opps[opps["outcome"].isin(["won", "lost", "churned"])]
bad_dates = closed["closed_date"].isna() | (closed["closed_date"] < closed["created_date"])
if bad_dates.any():
    print(f"dropped {int(bad_dates.sum()):,} closed deals without a valid closed_date")
deals = closed[~bad_dates].sort_values(["closed_date", "opportunity_id"]).reset_index(drop=True)
deals["cycle_days"] = (deals["closed_date"] - deals["created_date"]).dt.days

# a won deal of an account that customers.csv marks churned (churn on/after the close, or undated) counts as churned
churn = (customers[customers["status"].str.strip().str.lower() == "churned"]
         .groupby("account_id")["churn_date"].max(numeric_only=False))
deals["churn_date"] = deals["account_id"].map(churn)
cust_churned = deals["account_id"].isin(churn.index) & (
    deals["churn_date"].isna() | (deals["churn_date"] >= deals["closed_date"]))

# 3. Time-based holdout: the latest 20% of closed deals, whole days together
n = len(deals)
holdout_start = deals["closed_date"].iloc[n - int(HOLDOUT_FRACTION * n)]
is_holdout = (deals["closed_date"] >= holdout_start).to_numpy()

# velocity window: median cycle of the won (incl. later churned) deals before the holdout, rounded up
won_train = deals["outcome"].isin(["won", "churned"]) & ~is_holdout
window = int(np.ceil(deals.loc[won_train, "cycle_days"].median()))
deals["y"] = ((deals["outcome"] == "won") & (deals["cycle_days"] <= window) & ~cust_churned).astype(int)
y = deals["y"].to_numpy()
print(f"velocity window: {window} days (median sales cycle of the {int(won_train.sum()):,} won deals before the holdout)")
print(f"holdout: {int(is_holdout.sum()):,} deals closed from {holdout_start.date()} "
      f"({int(y[is_holdout].sum()):,} velocity wins); trained on {int((~is_holdout).sum()):,} deals")
stage("label + holdout")

# %% 4. Features: derived columns in pandas, transformation in a ColumnTransformer
ref_year = deals["closed_date"].dt.year.max()
feat = accounts.drop(columns=ID_COLS).copy()
numeric = [c for c in feat.columns if pd.api.types.is_numeric_dtype(feat[c])
           and not pd.api.types.is_bool_dtype(feat[c])]
categorical = [c for c in feat.columns if c not in numeric]
for c in ["employees", "annual_revenue"]:
    if c in feat:
        feat[c] = np.log1p(feat[c].clip(lower=0))
if "founded_year" in feat:
    feat["company_age"] = (ref_year - feat.pop("founded_year")).clip(lower=0)
    numeric = [("company_age" if c == "founded_year" else c) for c in numeric]
for c in categorical:  # plain text columns with NaN for sklearn (flags read as bool become text)
    feat[c] = feat[c].astype("string").astype(object).where(feat[c].notna(), np.nan)
feat.index = accounts["account_id"]


def make_preprocessor():
    cat = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
                    ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                             min_frequency=MIN_LEVEL_COUNT, sparse_output=False))])
    scaled = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    bins = Pipeline([("impute", SimpleImputer(strategy="median")),
                     ("bins", KBinsDiscretizer(n_bins=5, strategy="quantile", encode="onehot-dense"))])
    return ColumnTransformer([("cat", cat, categorical), ("num", scaled, numeric),
                              ("bin", bins, numeric),
                              ("missing", MissingIndicator(features="all"), numeric)])


def fit_features(deal_rows):
    """Learn the transformation on the distinct accounts of these deals (levels count accounts)."""
    pre = make_preprocessor()
    pre.fit(feat.loc[deals.loc[deal_rows, "account_id"].unique()])
    return pre


pre = fit_features(~is_holdout)
X = pre.transform(feat.loc[deals["account_id"]])
X_train, y_train, X_hold, y_hold = X[~is_holdout], y[~is_holdout], X[is_holdout], y[is_holdout]
print(f"features: {X.shape[1]} columns ({len(categorical)} categorical, {len(numeric)} numeric)")
stage("features")

# %% 5. Penalty by time-ordered CV on the latest training deals (deals are sorted by closed_date)
cv = GridSearchCV(LogisticRegression(solver="lbfgs", max_iter=1000), {"C": CS},
                  cv=TimeSeriesSplit(n_splits=3), scoring="neg_log_loss", refit=False)
cv.fit(X_train[-CV_MAX_DEALS:], y_train[-CV_MAX_DEALS:])
best_c = cv.best_params_["C"]
print("cv log loss by C: " + ", ".join(
    f"{c:g}={-s:.4f}" for c, s in zip(CS, cv.cv_results_["mean_test_score"])) + f"; chosen C={best_c:g}")
stage("cross-validation")

model = LogisticRegression(solver="lbfgs", max_iter=1000, C=best_c).fit(X_train, y_train)
p_hold = model.predict_proba(X_hold)[:, 1]
auc = roc_auc_score(y_hold, p_hold)
brier = np.mean((p_hold - y_hold) ** 2)
base = np.mean((y_train.mean() - y_hold) ** 2)
print(f"holdout quality: AUC {auc:.3f}, Brier {brier:.4f} (base rate alone {base:.4f})")
stage("fit + holdout evaluation")

# refit features and model on all closed deals with the chosen penalty
all_rows = np.ones(n, dtype=bool)
pre = fit_features(all_rows)
X = pre.transform(feat.loc[deals["account_id"]])
model = LogisticRegression(solver="lbfgs", max_iter=1000, C=best_c).fit(X, y)
stage("refit on all closed deals")

# %% 6. Score every account: percentile of the accounts' own log-odds
XA = pre.transform(feat)
logit = model.decision_function(XA)
cuts = np.percentile(logit, np.arange(1, 101))
score = np.searchsorted(cuts, logit, side="right")
scores = accounts[ID_COLS].copy()
scores["score"] = score
scores["p_velocity_win"] = model.predict_proba(XA)[:, 1].round(6)
scores["band"] = np.select([score >= 70, score >= 40], ["high", "medium"], "low")
scores = scores.sort_values(["score", "account_id"], ascending=[False, True])
counts = scores["band"].value_counts()
print(f"accounts: {counts.get('high', 0):,} high, {counts.get('medium', 0):,} medium, {counts.get('low', 0):,} low")
stage("score")

(args.out / "segments").mkdir(parents=True, exist_ok=True)
scores.to_csv(args.out / "scores.csv", index=False)
for t in THRESHOLDS:
    seg = scores.loc[scores["score"] >= t, ["account_id", "account_name", "domain", "score", "band"]]
    seg.to_csv(args.out / "segments" / f"score_gte_{t}.csv", index=False)
stage("write scores + segments")

# %% 7. Signals: velocity-win rate of each categorical level / numeric bin vs the rest (two-proportion z-test)
names = pre.get_feature_names_out()
indicator = np.array([nm.startswith(("cat__", "bin__")) for nm in names])
B = X[:, indicator]
deals_n = B.sum(axis=0)
wins = B.T @ y
rest_n, rest_wins = n - deals_n, y.sum() - wins
rate = wins / np.maximum(deals_n, 1)
rest_rate = rest_wins / np.maximum(rest_n, 1)
baseline = y.mean()
pooled = y.sum() / n
se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(deals_n, 1) + 1 / np.maximum(rest_n, 1)))
z = (rate - rest_rate) / np.where(se > 0, se, np.nan)
signals = pd.DataFrame({
    "feature": [nm.split("__", 1)[1] for nm in names[indicator]],
    "deals": deals_n.astype(int), "velocity_wins": wins.astype(int),
    "rate": rate.round(4), "rest_rate": rest_rate.round(4), "baseline": round(baseline, 4),
    "lift": (rate / baseline).round(3), "z": z.round(3), "p_value": 2 * norm.sf(np.abs(z)),
}).sort_values(["p_value", "feature"])
signals.to_csv(args.out / "signals.csv", index=False)
print(f"signals: {len(signals)} levels/bins tested, {int((signals['p_value'] < 0.05).sum())} with p < 0.05")
stage("signals")

peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"[{time.perf_counter() - t_start:8.2f} s] total (peak RSS {peak_mb:,.0f} MB)")

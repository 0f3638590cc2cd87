"""Advance a CRM export by a quarter, as the next quarter's export would read.

    python3 notebooks/crm_quarter.py SRC DST [--days 91] [--seed 1] [--truth TRUTH.csv]

Reads SRC's files by their own headers and writes DST: every row of SRC, then
what a quarter adds after SRC's last date (the newest created, closed, churn or
trigger date):
- about 6% of prospects open a deal during the quarter; a deal closes after a
  log-normal cycle (median 35 days) and stays open when that falls past the
  quarter's end; closed deals are won with the account's true probability
  when --truth is given (the generator's truth file), else half the time;
- about 60% of the deals open at SRC's end close during the quarter;
- won deals add an active customer; about 2% of active customers churn;
- about 1% new accounts (firmographics copied from existing rows, new ids);
- a few new buying triggers.
Dates are ISO and fall inside the quarter, so the next run holds out exactly
these new deals and measures the earlier run's bands on them. Deterministic
per seed.
"""
import argparse
import csv
import datetime as dt
import math
import os
import random
import shutil

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dst")
ap.add_argument("--days", type=int, default=91)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--truth", help="account_id,p_velocity_win_true (icp generate's truth file)")
args = ap.parse_args()
rng = random.Random(args.seed)

shutil.rmtree(args.dst, ignore_errors=True)
shutil.copytree(args.src, args.dst)


def read(name):
    path = os.path.join(args.dst, name)
    if not os.path.exists(path):
        return None, []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(name, header, rows):
    with open(os.path.join(args.dst, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def day(s):
    try:
        return dt.date.fromisoformat(s.strip()[:10])
    except ValueError:
        return None


acc_h, acc = read("accounts.csv")
opp_h, opp = read("opportunities.csv")
cus_h, cus = read("customers.csv")
trg_h, trg = read("triggers.csv")
if acc_h is None or opp_h is None:
    raise SystemExit(f"{args.src}: needs accounts.csv and opportunities.csv")
A = {c: i for i, c in enumerate(acc_h)}
O = {c: i for i, c in enumerate(opp_h)}
C = {c: i for i, c in enumerate(cus_h)} if cus_h else {}
T = {c: i for i, c in enumerate(trg_h)} if trg_h else {}

dates = [day(r[O[c]]) for r in opp for c in ("created_date", "closed_date") if c in O and r[O[c]]]
dates += [day(r[C["churn_date"]]) for r in cus if "churn_date" in C and r[C["churn_date"]]]
dates += [day(r[T["date"]]) for r in trg if "date" in T and r[T["date"]]]
last = max(d for d in dates if d)
end = last + dt.timedelta(days=args.days)

truth = {}
if args.truth:
    with open(args.truth, newline="") as f:
        for r in csv.DictReader(f):
            truth[r["account_id"]] = float(r["p_velocity_win_true"])


def p_win(a):
    p = truth.get(a)
    return 0.5 if p is None else min(0.95, 0.15 + 1.6 * p)


amounts = sorted(float(r[O["amount"]]) for r in opp if r[O["amount"]])
median_amount = amounts[len(amounts) // 2] if amounts else 10000.0
REASONS = [
    "Price: per-seat cost above budget for a team this size",
    "Competitor: incumbent suite bundled a similar module",
    "No decision: champion left during the evaluation",
    "Timing: system migration freeze until next fiscal year",
    "price",
    "competitor",
]


def new_row(header, values):
    return [values.get(c, "") for c in header]


def close(a, created):
    """A closing date and outcome for a deal created on `created`, or open."""
    cycle = max(1, round(math.exp(math.log(35) + 0.6 * rng.gauss(0, 1))))
    closed = created + dt.timedelta(days=cycle)
    if closed > end:
        return "", "open", ""
    if rng.random() < p_win(a):
        return closed.isoformat(), "won", ""
    return closed.isoformat(), "lost", rng.choice(REASONS)


with_deal = {r[O["account_id"]] for r in opp}
customers = {r[C["account_id"]] for r in cus} if C else set()
won, opened, closed_open, churned = 0, 0, 0, 0


def add_customer(a, when):
    global won
    won += 1
    if C and a not in customers:
        customers.add(a)
        cus.append(new_row(cus_h, {"account_id": a, "status": "active", "delivery_fit": "4", "gross_margin": "0.6"}))


# deals open at the export's end: most close during the quarter
for r in opp:
    if r[O["outcome"]] == "open" and rng.random() < 0.6:
        d = last + dt.timedelta(days=rng.randint(1, args.days))
        r[O["closed_date"]] = d.isoformat()
        if rng.random() < p_win(r[O["account_id"]]):
            r[O["outcome"]] = "won"
            add_customer(r[O["account_id"]], d)
        else:
            r[O["outcome"]] = "lost"
            if "loss_reason" in O:
                r[O["loss_reason"]] = rng.choice(REASONS)
        closed_open += 1

# prospects open deals
prospects = sorted(r[A["account_id"]] for r in acc if r[A["account_id"]] not in with_deal)
for k, a in enumerate(p for p in prospects if rng.random() < 0.06):
    created = last + dt.timedelta(days=rng.randint(1, args.days - 5))
    closed_date, outcome, reason = close(a, created)
    amount = round(median_amount * math.exp(0.4 * rng.gauss(0, 1)), 2)
    opp.append(new_row(opp_h, {
        "opportunity_id": f"Q{args.seed}-{k:06d}", "account_id": a,
        "created_date": created.isoformat(), "closed_date": closed_date,
        "outcome": outcome, "amount": f"{amount:.2f}", "loss_reason": reason,
        "product": "Core", "source": "outbound", "owner": "rep_01",
    }))
    opened += 1
    if outcome == "won":
        add_customer(a, closed_date)

# churn
if C:
    for r in cus:
        if r[C["status"]] == "active" and rng.random() < 0.02:
            r[C["status"]] = "churned"
            if "churn_date" in C:
                r[C["churn_date"]] = (last + dt.timedelta(days=rng.randint(1, args.days))).isoformat()
            churned += 1

# new accounts, firmographics copied from existing rows
new = 0
for k in range(max(1, len(acc) // 100)):
    src = list(rng.choice(acc))
    src[A["account_id"]] = f"QA{args.seed}-{k:06d}"
    if "account_name" in A:
        src[A["account_name"]] = f"Newco {args.seed}-{k}"
    if "domain" in A:
        src[A["domain"]] = f"newco{args.seed}-{k}.example"
    acc.append(src)
    new += 1

# new triggers
if T:
    names = sorted({r[T["trigger"]] for r in trg}) or ["funding_round"]
    for _ in range(max(1, len(trg) // 16)):
        a = rng.choice(acc)[A["account_id"]]
        trg.append(new_row(trg_h, {"account_id": a, "trigger": rng.choice(names),
                                   "date": (last + dt.timedelta(days=rng.randint(1, args.days))).isoformat()}))

write("accounts.csv", acc_h, acc)
write("opportunities.csv", opp_h, opp)
if C:
    write("customers.csv", cus_h, cus)
if T:
    write("triggers.csv", trg_h, trg)
print(f"quarter {last + dt.timedelta(days=1)} to {end}: {opened} deals opened by prospects, "
      f"{closed_open} open deals closed, {won} won, {churned} churned, {new} accounts added")

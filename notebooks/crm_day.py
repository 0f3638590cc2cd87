"""Make day N's CRM export from day N-1's: deals won and opened, a churn,
firmographic changes, accounts added and deleted. Deterministic. Rows follow
the files' own headers, and dates count from the export's own last date
(day N is that date + N days), so any export of the contract works."""
import csv, sys, random, shutil, os, datetime as dt
src, dst, day = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(day)
shutil.rmtree(dst, ignore_errors=True); shutil.copytree(src, dst)
def read(n):
    with open(os.path.join(dst, n), newline='') as f: return list(csv.reader(f))
def write(n, rows):
    with open(os.path.join(dst, n), 'w', newline='') as f: csv.writer(f, lineterminator='\n').writerows(rows)
acc = read('accounts.csv'); opp = read('opportunities.csv'); cus = read('customers.csv')
A = {c: i for i, c in enumerate(acc[0])}; O = {c: i for i, c in enumerate(opp[0])}; C = {c: i for i, c in enumerate(cus[0])}
def row(header, values): return [values.get(c, "") for c in header]
def day_of(s):
    try: return dt.date.fromisoformat(s.strip()[:10])
    except ValueError: return None
# the export's last date: its newest created, closed or churn date
dates = [day_of(r[O[c]]) for r in opp[1:] for c in ("created_date", "closed_date") if r[O[c]]]
dates += [day_of(r[C["churn_date"]]) for r in cus[1:] if "churn_date" in C and r[C["churn_date"]]]
last = max(d for d in dates if d)
with_deal = {r[O["account_id"]] for r in opp[1:]}
prospects = [r[A["account_id"]] for r in acc[1:] if r[A["account_id"]] not in with_deal]
rng.shuffle(prospects)
date = (last + dt.timedelta(days=day)).isoformat()
# 10 prospects win a deal, 10 open one
for i, a in enumerate(prospects[:10]):
    opp.append(row(opp[0], {"opportunity_id": f"OD{day}{i:04d}", "account_id": a,
                            "created_date": (last - dt.timedelta(days=29)).isoformat(), "closed_date": date,
                            "outcome": "won", "amount": "15000.00", "product": "Core", "source": "inbound", "owner": "rep_01"}))
    cus.append(row(cus[0], {"account_id": a, "status": "active", "delivery_fit": "4", "gross_margin": "0.62"}))
for i, a in enumerate(prospects[10:20]):
    opp.append(row(opp[0], {"opportunity_id": f"OE{day}{i:04d}", "account_id": a,
                            "created_date": (last - dt.timedelta(days=10)).isoformat(), "outcome": "open",
                            "amount": "9000.00", "product": "Core", "source": "outbound", "owner": "rep_02"}))
# 5 active customers churn
active = [r for r in cus[1:] if r[C["status"]] == 'active']
for r in active[:5]:
    r[C["status"]] = 'churned'
    if "churn_date" in C: r[C["churn_date"]] = date
# 40 accounts change size (employees x 3)
hdr = acc[0]; e = hdr.index('employees')
for r in rng.sample(acc[1:], 40):
    if r[e]: r[e] = str(int(float(r[e])) * 3)
# 2 prospects deleted, 3 accounts added
gone = set(prospects[20:22])
acc = [acc[0]] + [r for r in acc[1:] if r[A["account_id"]] not in gone]
for i in range(3):
    acc.append(row(acc[0], {"account_id": f"N{day}{i:06d}", "account_name": f"Newco {day}-{i}", "domain": f"newco{day}{i}.io",
                            "industry": "Logistics", "country": "United States", "employees": "300",
                            "annual_revenue": "45000000", "founded_year": "2015", "ownership": "private"}))
write('accounts.csv', acc); write('opportunities.csv', opp); write('customers.csv', cus)
print(f"day {day}: 10 won, 10 opened, 5 churned, 40 resized, 2 deleted, 3 added")

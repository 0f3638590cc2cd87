"""Make day N's CRM export from day N-1's: deals won and opened, a churn,
firmographic changes, accounts added and deleted. Deterministic."""
import csv, sys, random, shutil, os
src, dst, day = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(day)
shutil.rmtree(dst, ignore_errors=True); shutil.copytree(src, dst)
def read(n):
    with open(os.path.join(dst, n), newline='') as f: return list(csv.reader(f))
def write(n, rows):
    with open(os.path.join(dst, n), 'w', newline='') as f: csv.writer(f, lineterminator='\n').writerows(rows)
acc = read('accounts.csv'); opp = read('opportunities.csv'); cus = read('customers.csv')
with_deal = {r[1] for r in opp[1:]}
prospects = [r[0] for r in acc[1:] if r[0] not in with_deal]
rng.shuffle(prospects)
date = f"2025-07-0{day}"
# 10 prospects win a deal, 10 open one
for i, a in enumerate(prospects[:10]):
    opp.append([f"OD{day}{i:04d}", a, "2025-06-01", date, "won", "15000.00", "", "Core", "inbound", "rep_01"])
    cus.append([a, "active", "", "4", "0.62"])
for i, a in enumerate(prospects[10:20]):
    opp.append([f"OE{day}{i:04d}", a, "2025-06-20", "", "open", "9000.00", "", "Core", "outbound", "rep_02"])
# 5 active customers churn
active = [r for r in cus[1:] if r[1] == 'active']
for r in active[:5]:
    r[1] = 'churned'; r[2] = date
# 40 accounts change size (employees x 3)
hdr = acc[0]; e = hdr.index('employees')
for r in rng.sample(acc[1:], 40):
    if r[e]: r[e] = str(int(float(r[e])) * 3)
# 2 prospects deleted, 3 accounts added
gone = set(prospects[20:22])
acc = [acc[0]] + [r for r in acc[1:] if r[0] not in gone]
for i in range(3):
    acc.append([f"N{day}{i:06d}", f"Newco {day}-{i}", f"newco{day}{i}.io", "Logistics", "United States", "300", "45000000", "2015", "private"])
write('accounts.csv', acc); write('opportunities.csv', opp); write('customers.csv', cus)
print(f"day {day}: 10 won, 10 opened, 5 churned, 40 resized, 2 deleted, 3 added")

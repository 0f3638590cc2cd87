"""Score an accounts file with `icp export-sql` in real engines, timed, and
compare every account with the binary's scores.csv.

    python notebooks/warehouse_bench.py --icp target/release/icp \
        --model RUN/model.json --accounts DATA/accounts.csv \
        --scores SCORED/scores.csv [--engines duckdb,sqlite,postgres]

Each engine gets the accounts as a staging table of text columns (the SQL
casts, as it would on a warehouse), then runs the exported query once; the
load and the query are timed apart. DuckDB needs the `duckdb` Python
package, SQLite the `sqlite3` command (with LN and EXP), PostgreSQL a server
that answers `psql -d postgres`. Prints one line per engine: accounts,
load seconds, query seconds, and how many scores, bands and probabilities
(within 1e-12) equal the binary's.
"""
import argparse, csv, os, subprocess, sys, tempfile, time


def export(icp, model, dialect, table):
    return subprocess.run([icp, "export-sql", "--model", model, "--dialect", dialect,
                           "--table", table], check=True, capture_output=True,
                          text=True).stdout


def header(path):
    with open(path, newline="") as f:
        return next(csv.reader(f))


def duckdb_run(icp, model, accounts, work):
    import duckdb
    con = duckdb.connect()
    t0 = time.time()
    con.execute(f"CREATE TABLE crm_accounts AS SELECT * FROM read_csv('{accounts}', "
                "header=true, all_varchar=true)")
    load = time.time() - t0
    sql = export(icp, model, "duckdb", "crm_accounts")
    t0 = time.time()
    rows = con.execute(sql).fetchall()
    return load, time.time() - t0, [(r[0], r[1], r[2], r[3]) for r in rows]


def sqlite_run(icp, model, accounts, work):
    db = os.path.join(work, "w.db")
    cols = ", ".join(f'"{c}" TEXT' for c in header(accounts))
    t0 = time.time()
    subprocess.run(["sqlite3", db], input=f"CREATE TABLE crm_accounts ({cols});\n"
                   f".mode csv\n.import --skip 1 {accounts} crm_accounts\n"
                   # empty cells are NULL in the contract
                   + "".join(f"UPDATE crm_accounts SET \"{c}\" = NULL WHERE \"{c}\" = '';\n"
                             for c in header(accounts)),
                   check=True, text=True)
    load = time.time() - t0
    sql = export(icp, model, "sqlite", "crm_accounts")
    t0 = time.time()
    out = subprocess.run(["sqlite3", "-separator", "\t", db], input=sql + ";\n",
                         check=True, capture_output=True, text=True).stdout
    return load, time.time() - t0, parse_tsv(out)


def postgres_run(icp, model, accounts, work):
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    cols = ", ".join(f'"{c}" TEXT' for c in header(accounts))
    t0 = time.time()
    subprocess.run(psql, input="DROP SCHEMA IF EXISTS icp_bench CASCADE; CREATE SCHEMA icp_bench;\n"
                   f"CREATE TABLE icp_bench.crm_accounts ({cols});\n"
                   f"\\copy icp_bench.crm_accounts FROM '{accounts}' WITH (FORMAT csv, HEADER true)\n"
                   "ANALYZE icp_bench.crm_accounts;\n", check=True, text=True)
    load = time.time() - t0
    sql = export(icp, model, "postgres", "icp_bench.crm_accounts")
    t0 = time.time()
    out = subprocess.run(psql + ["-At", "-F", "\t"], input=sql + ";\n", check=True,
                         capture_output=True, text=True).stdout
    took = time.time() - t0
    subprocess.run(psql + ["-c", "DROP SCHEMA icp_bench CASCADE"], check=True)
    return load, took, parse_tsv(out)


def parse_tsv(out):
    rows = []
    for line in out.splitlines():
        f = line.split("\t")
        rows.append((f[0], int(f[1]) if f[1] else None, float(f[2]) if f[2] else None, f[3]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--icp", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--accounts", required=True)
    ap.add_argument("--scores", required=True, help="the binary's scores.csv for the same accounts")
    ap.add_argument("--engines", default="duckdb,sqlite,postgres")
    a = ap.parse_args()
    want = {}
    with open(a.scores, newline="") as f:
        for r in csv.DictReader(f):
            want[r["account_id"]] = (int(r["score"]) if r["score"] else None,
                                     float(r["p_velocity_win"]) if r["p_velocity_win"] else None,
                                     r["band"])
    runs = {"duckdb": duckdb_run, "sqlite": sqlite_run, "postgres": postgres_run}
    with tempfile.TemporaryDirectory() as work:
        for e in a.engines.split(","):
            load, query, rows = runs[e](a.icp, a.model, os.path.abspath(a.accounts), work)
            same_s = same_b = same_p = 0
            for acc, s, p, b in rows:
                w = want.get(acc)
                if w is None:
                    continue
                same_s += s == w[0]
                same_b += b == w[2]
                same_p += (p is None and w[1] is None) or (
                    p is not None and w[1] is not None and abs(p - w[1]) < 1e-12)
            print(f"{e}: {len(rows):,} accounts, load {load:.1f} s, query {query:.1f} s; "
                  f"score equal {same_s:,}, band equal {same_b:,}, p equal {same_p:,} "
                  f"of {len(want):,}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

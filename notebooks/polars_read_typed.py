"""Does reading CSV typed save time over reading it as text?

Times polars reading each input file of a data directory two ways, best of
three: every column as text (what `icp`'s loader does before its checks)
and with polars' type inference (numbers and booleans typed). BENCHMARKS.md
("A typed loader, measured and not built") quotes its figures.

    POLARS_MAX_THREADS=2 python notebooks/polars_read_typed.py DATA_DIR

Needs polars (notebooks/requirements.txt).
"""

import sys
import time
from pathlib import Path

import polars as pl


def best_of(read, runs=3):
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        df = read()
        best = min(best, time.perf_counter() - t)
    return best, df


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: polars_read_typed.py DATA_DIR")
    data = Path(sys.argv[1])
    print(f"polars {pl.__version__}, {pl.thread_pool_size()} threads")
    print(f"{'file':<22}{'rows':>12}{'text s':>9}{'typed s':>9}  typed columns")
    for name in ["accounts.csv", "opportunities.csv", "customers.csv", "triggers.csv"]:
        path = data / name
        if not path.exists():
            continue
        text, _ = best_of(lambda: pl.read_csv(path, infer_schema=False))
        typed, df = best_of(lambda: pl.read_csv(path, infer_schema_length=10_000))
        kinds = [f"{c}:{t}" for c, t in zip(df.columns, df.dtypes) if t != pl.String]
        print(f"{name:<22}{df.height:>12,}{text:>9.3f}{typed:>9.3f}  {', '.join(kinds)}")


if __name__ == "__main__":
    main()

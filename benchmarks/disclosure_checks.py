"""Benchmark: streaming statistical-disclosure checks (gateway.domain.disclosure.check_tabular).

    .venv/bin/python -m benchmarks.disclosure_checks            # 10 MB and 100 MB CSVs, 1,000 small files
    .venv/bin/python -m benchmarks.disclosure_checks --quick    # 2 MB and 20 MB, 200 small files

Generated CSVs (a deterministic, aggregate-style table: area code, sex, age band, year, a count that is
below 10 in about 2% of rows, a rate) are written to a temporary directory and checked with the default
TabularPolicy, each measurement in a fresh subprocess so that its peak RSS (ru_maxrss) belongs to that
check alone: growth = peak RSS after the check - peak RSS after the imports. The tracemalloc peak (Python
allocations) is measured in a separate run, since tracing slows the check down. As a floor, the same file
is also read with csv.reader alone (no checks). The 1,000 small files (frequency tables of ~20 rows) are
checked one after another in one process, opening each from disk.

`main()` prints a markdown section and returns it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

_AGE_BANDS = [f"{a}-{a + 4}" for a in range(0, 90, 5)] + ["90+"]


def write_csv(path: Path, target_bytes: int, seed: int = 1) -> int:
    """Write an aggregate-style CSV of about `target_bytes`; return its number of data rows."""
    rnd = random.Random(seed)
    rows = 0
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        header = "area_code,sex,age_band,year,n,rate_per_1000\n"
        f.write(header)
        written += len(header)
        while written < target_bytes:
            chunk = []
            for _ in range(2000):
                n = rnd.randint(1, 9) if rnd.random() < 0.02 else rnd.randint(10, 5000)
                chunk.append(
                    f"E0{rnd.randint(1_000_000, 9_999_999)},{'MF'[rows % 2]},{_AGE_BANDS[rows % len(_AGE_BANDS)]},"
                    f"{2015 + rows % 8},{n},{rnd.random() * 100:.3f}\n"
                )
                rows += 1
            text = "".join(chunk)
            f.write(text)
            written += len(text)
    return rows


def write_small_files(directory: Path, count: int, seed: int = 2) -> list[Path]:
    """`count` small frequency tables (region x sex x age band, ~20 rows), a few with small cells."""
    rnd = random.Random(seed)
    paths = []
    for i in range(count):
        lines = ["region,sex,age_band,count"]
        for _ in range(20):
            r = rnd.random()
            n = rnd.randint(1, 9) if r < 0.03 else 0 if r < 0.08 else rnd.randint(10, 900)
            lines.append(f"R{rnd.randint(1, 9)},{rnd.choice('MF')},{rnd.choice(_AGE_BANDS)},{n}")
        path = directory / f"table_{i:04d}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


# ---------------------------------------------------------------- one measurement, in a child process


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(path: str, mode: str) -> dict[str, Any]:
    """Run in a fresh process: check (or only parse) one file; time, peak RSS growth, tracemalloc peak."""
    from gateway.domain.disclosure import TabularPolicy, check_tabular

    policy = TabularPolicy()
    rss_before = _maxrss_bytes()
    if mode == "trace":
        tracemalloc.start()
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    with open(path, "rb") as f:
        if mode == "csv-only":
            rows = 0
            for _ in csv.reader(io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")):
                rows += 1
            out["rows"] = rows - 1
        else:
            outcome = check_tabular(f, ",", policy)
            out.update(rows=outcome.rows, total_flags=outcome.total_flags,
                       failed=[r.rule_id for r in outcome.results if not r.passed])
    out["seconds"] = time.perf_counter() - t0
    if mode == "trace":
        out["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out["rss_before"] = rss_before
    out["rss_after"] = _maxrss_bytes()
    return out


def _child(path: Path, mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONTRACEMALLOC"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.disclosure_checks", "--measure", str(path), "--mode", mode],
        cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=1800,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- the small-files series


def small_files_series(paths: list[Path]) -> dict[str, Any]:
    from gateway.domain.disclosure import TabularPolicy, check_tabular

    policy = TabularPolicy()
    for p in paths[:20]:  # warm-up (imports, regex caches)
        with open(p, "rb") as f:
            check_tabular(f, ",", policy)
    latencies = []
    failed = 0
    t0 = time.perf_counter()
    for p in paths:
        t = time.perf_counter()
        with open(p, "rb") as f:
            outcome = check_tabular(f, ",", policy)
        latencies.append(time.perf_counter() - t)
        failed += not outcome.passed
    wall = time.perf_counter() - t0
    tracemalloc.start()
    for p in paths:
        with open(p, "rb") as f:
            check_tabular(f, ",", policy)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ordered = sorted(latencies)
    return {
        "count": len(paths),
        "bytes": sum(p.stat().st_size for p in paths),
        "wall": wall,
        "p50": statistics.median(ordered),
        "p95": ordered[max(0, int(len(ordered) * 0.95 + 0.5) - 1)],
        "max": ordered[-1],
        "failed": failed,
        "tracemalloc_peak": peak,
    }


# ---------------------------------------------------------------- report


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


def main(quick: bool = False) -> str:
    sizes = [(2, "2 MB"), (20, "20 MB")] if quick else [(10, "10 MB"), (100, "100 MB")]
    small_count = 200 if quick else 1000
    rows_md: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-disclosure-") as tmp:
        root = Path(tmp)
        big: list[tuple[str, Path, int]] = []
        for mb, label in sizes:
            path = root / f"table_{mb}mb.csv"
            t = time.perf_counter()
            rows = write_csv(path, mb * 1_000_000)
            print(f"[bench disclosure] wrote {label} ({rows:,} rows) in {time.perf_counter() - t:.1f} s", flush=True)
            big.append((label, path, rows))
        for label, path, _ in big:
            size = path.stat().st_size
            plain = _child(path, "check")
            traced = _child(path, "trace")
            floor = _child(path, "csv-only")
            print(f"[bench disclosure] {label}: {plain['seconds']:.1f} s checked, {floor['seconds']:.1f} s csv only",
                  flush=True)
            rows_md.append(
                f"| {label} CSV ({plain['rows']:,} rows x 6 columns) | {plain['seconds']:.2f} | "
                f"{size / 1e6 / plain['seconds']:.1f} | {_mib(plain['rss_after'] - plain['rss_before'])} | "
                f"{_mib(traced['tracemalloc_peak'])} | {plain['total_flags']:,} small cells; failed: "
                f"{', '.join(plain['failed']) or 'none'} |"
            )
            rows_md.append(
                f"| {label} CSV, csv.reader alone (floor, no checks) | {floor['seconds']:.2f} | "
                f"{size / 1e6 / floor['seconds']:.1f} | {_mib(floor['rss_after'] - floor['rss_before'])} | - | - |"
            )
        small_dir = root / "small"
        small_dir.mkdir()
        small = small_files_series(write_small_files(small_dir, small_count))
    cores = os.cpu_count()
    lines = [
        "## Disclosure checks on tabular outputs (streaming)",
        "",
        "`gateway.domain.disclosure.check_tabular` with the default `TabularPolicy` (row cap, small cells below "
        "10, NHS numbers / dates of birth / postcodes) over generated aggregate-style CSVs (area code, sex, age "
        "band, year, a count below 10 in ~2% of rows, a rate), read from a file in a temporary directory. Each "
        "large-file figure comes from a fresh subprocess: *RSS growth* is that process's peak RSS after the "
        "check minus its peak after the imports; the *tracemalloc peak* (Python allocations) is from a separate "
        "traced run. The csv.reader-only row is the floor: the same file parsed with no checks. "
        f"{cores} cores, Python {sys.version.split()[0]}.",
        "",
        "| input | time (s) | MB/s | peak RSS growth (MiB) | tracemalloc peak (MiB) | outcome |",
        "|---|---|---|---|---|---|",
        *rows_md,
        "",
        f"{small['count']:,} small files ({small['bytes'] / small['count']:.0f} bytes each on average), checked "
        f"one after another in one process, each opened from disk: {small['wall']:.2f} s in all, per file p50 "
        f"{small['p50'] * 1e3:.2f} ms, p95 {small['p95'] * 1e3:.2f} ms, max {small['max'] * 1e3:.2f} ms; "
        f"{small['failed']} failed a check (planted small cells); tracemalloc peak over the series "
        f"{_mib(small['tracemalloc_peak'])} MiB.",
        "",
        "Memory stays flat in file size: the check holds one block of at most 1,024 rows (or 1 MiB of text), "
        "per-column counters, a bounded cache of cell kinds and at most `max_flags` cell positions per column "
        "and rule.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="check", choices=["check", "trace", "csv-only"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.mode)))
    else:
        main(quick=args.quick)

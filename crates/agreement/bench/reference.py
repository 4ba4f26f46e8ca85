#!/usr/bin/env python3
"""Comparison side of the agreement benchmark.

Runs the Python reference libraries on the CSVs that
`cargo run --release --example agreement_bench -p concord-agreement` writes to /tmp
(items as rows, raters as columns, empty cell = missing), and on the VADER tweet ratings.
Each measurement runs in a fresh subprocess so that its peak memory (VmHWM) is its own.

Set-up (outside the repository):
    python3 -m venv /tmp/agree-venv
    /tmp/agree-venv/bin/pip install krippendorff numpy pandas irrCAC statsmodels
    /tmp/agree-venv/bin/python crates/agreement/bench/reference.py            # benchmark
    /tmp/agree-venv/bin/python crates/agreement/bench/reference.py vader PATH # VADER alpha
"""

import json
import os
import subprocess
import sys
import time

INPUTS = {
    "A_1M_x3": "/tmp/agreement_bench_1m_x3.csv",
    "B_100k_x20": "/tmp/agreement_bench_100k_x20.csv",
}
RUST_JSON = "/tmp/agreement_bench_rust.json"

# (label, library call) pairs; each is run in its own process.
MEASUREMENTS = [
    "krippendorff:nominal",
    "krippendorff:ordinal",
    "krippendorff:interval",
    "krippendorff:ratio",
    "statsmodels:fleiss",
    "irrCAC:fleiss",
    "irrCAC:gwet",
    "irrCAC:krippendorff",
]

# The Rust key for each measurement, to compare values.
RUST_KEYS = {
    "krippendorff:nominal": "KrippendorffAlpha(Nominal)",
    "krippendorff:ordinal": "KrippendorffAlpha(Ordinal)",
    "krippendorff:interval": "KrippendorffAlpha(Interval)",
    "krippendorff:ratio": "KrippendorffAlpha(Ratio)",
    "statsmodels:fleiss": "FleissKappa(Identity)",
    "irrCAC:fleiss": "FleissKappa(Identity)",
    "irrCAC:gwet": "GwetAc(Identity)",
    "irrCAC:krippendorff": "KrippendorffAlpha(Nominal)",
}


def vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def one(measurement, path):
    """Runs one measurement in this process and prints a JSON line."""
    import numpy as np
    import pandas as pd

    df = pd.read_csv(path, dtype="float64")
    lib, what = measurement.split(":")
    base_rss = vm("VmRSS")
    cpu0, t0 = time.process_time(), time.perf_counter()
    if lib == "krippendorff":
        import krippendorff

        data = df.to_numpy().T  # raters × items, NaN = missing
        cpu0, t0 = time.process_time(), time.perf_counter()
        value = krippendorff.alpha(reliability_data=data, level_of_measurement=what)
    elif lib == "statsmodels":
        from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

        complete = df.dropna().to_numpy().astype(int)
        if len(complete) != len(df):
            print(json.dumps({"measurement": measurement, "skipped": "statsmodels needs complete rows"}))
            return
        cpu0, t0 = time.process_time(), time.perf_counter()
        table, _ = aggregate_raters(complete)
        value = fleiss_kappa(table, method="fleiss")
    elif lib == "irrCAC":
        from irrCAC.raw import CAC

        cac = CAC(df, digits=15)
        value = getattr(cac, what)()["est"]["coefficient_value"]
    else:
        raise SystemExit(f"unknown measurement {measurement}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        json.dumps(
            {
                "measurement": measurement,
                "value": float(value),
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_mib": vm("VmHWM"),
                "call_extra_mib": vm("VmHWM") - base_rss,
            }
        )
    )


def bench():
    rust = {}
    if os.path.exists(RUST_JSON):
        with open(RUST_JSON) as f:
            rust = json.load(f)
    print("| input | library | value | Rust value | wall s | CPU s | peak MiB (process) | extra MiB (call) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path in INPUTS.items():
        if not os.path.exists(path):
            print(f"missing {path}: run the Rust example first", file=sys.stderr)
            continue
        for m in MEASUREMENTS:
            try:
                out = subprocess.run(
                    [sys.executable, __file__, "one", m, path],
                    capture_output=True,
                    text=True,
                    timeout=int(os.environ.get("REFERENCE_TIMEOUT", "900")),
                )
            except subprocess.TimeoutExpired:
                print(f"| {name} | {m} | timed out | | | | | |")
                continue
            line = out.stdout.strip().splitlines()[-1:] or [""]
            try:
                r = json.loads(line[0])
            except json.JSONDecodeError:
                err = (out.stderr.strip().splitlines() or ["?"])[-1]
                print(f"| {name} | {m} | failed: {err[:80]} | | | | | |")
                continue
            if "skipped" in r:
                print(f"| {name} | {m} | skipped: {r['skipped']} | | | | | |")
                continue
            rv = rust.get(f"{name}/{RUST_KEYS[m]}")
            rvs = f"{rv:.12f}" if isinstance(rv, float) else "-"
            print(
                f"| {name} | {m} | {r['value']:.12f} | {rvs} | {r['wall_s']:.3f} | {r['cpu_s']:.3f} "
                f"| {r['peak_mib']:.0f} | {r['call_extra_mib']:.0f} |"
            )
            sys.stdout.flush()


def vader(path):
    import krippendorff
    import numpy as np

    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line)["ratings"])
    width = max(len(r) for r in rows)
    data = np.full((width, len(rows)), np.nan)
    for i, r in enumerate(rows):
        data[: len(r), i] = r  # the k-th rating is rater k, as given
    for level in ["interval", "ordinal", "nominal", "ratio"]:
        t0 = time.perf_counter()
        a = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        print(f"VADER krippendorff {level}: {a:.12f} ({time.perf_counter() - t0:.2f} s)")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "one":
        one(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "vader":
        vader(sys.argv[2])
    else:
        bench()

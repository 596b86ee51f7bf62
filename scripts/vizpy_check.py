#!/usr/bin/env python3
"""Compare viz's numbers with the original viz.py's, file by file (used by test-viz-py.sh).

Usage: vizpy_check.py --points CSV [--viz-py PATH] [--plot-dir DIR] DIR [DIR ...]

The original viz.py (anyscale/ray-serve-llm-perf-examples, prefill_decode/viz.py) is not
shipped with pd-lab. With --viz-py, its own functions build the tables and its command
line draws comprehensive_analysis.png. Without it, `Original` below re-implements, in our
own words, exactly what that script does with result files up to its tables:

* every `*.json` of a directory (glob order) is loaded; a file whose `max_concurrency`
  is missing or null is dropped; the point key is `max_concurrency` (a later file with
  the same key replaces an earlier one); unreadable files are reported and skipped;
* the directory's basename is parsed for the GPU count: first a P/D pair
  `[a-z]?N x tp|tpep M - [a-z]?K x tp|tpep L` (N·M + K·L GPUs), else one group
  `N x tp|tpep M` (N·M); no match: no normalised metrics;
* normalised = value * (8 / GPUs) (the division first, as the script computes it) for
  output_throughput and request_throughput; input_throughput_norm =
  (total_input_tokens / duration) * (8 / GPUs) when duration > 0;
* each table is a pandas DataFrame: rows = sorted keys, columns = experiments, a cell =
  the metric when present and not None (else NaN).

With --plot-dir it also draws the comprehensive figure: the script itself with --viz-py,
else the same series with matplotlib (x = the keys, y = the metric), to show the files
are plottable.

viz's side is its `--csv` long table (`<name>_points.csv`: one row per point with its
file). Points are matched by file; every number must agree to 1e-9 relative. A normalised
cell viz.py leaves empty because the directory name does not give the GPU count is
skipped (and counted); a point file viz.py cannot read at all is a failure.
"""
import argparse
import csv
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

GPUS_PER_NODE = 8
TABLE_METRICS = [
    "median_tpot_ms",
    "median_ttft_ms",
    "output_throughput",
    "request_throughput",
    "output_throughput_norm",
    "request_throughput_norm",
    "input_throughput_norm",
]


class Original:
    """The original script's reading and table arithmetic (see the module doc)."""

    PAIR = re.compile(r"[a-z]?(\d+)x(tp|tpep)(\d+)-[a-z]?(\d+)x(tp|tpep)(\d+)")
    ONE = re.compile(r"(\d+)x(tp|tpep)(\d+)")

    @staticmethod
    def load(folder):
        """{key: (result dict, file name)} in the script's order, and read errors."""
        points, errors = {}, []
        path = Path(folder)
        if not path.exists():
            return points, [f"{folder}: does not exist"]
        for f in path.glob("*.json"):
            try:
                with open(f) as fh:
                    result = json.load(fh)
            except Exception as e:  # the script prints and goes on
                errors.append(f"{f}: {e}")
                continue
            key = result.get("max_concurrency")
            if key is not None:
                if key in points:  # the earlier file is no longer shown
                    errors.append(
                        f"{points[key][1]}: hidden by {f.name} (both have max_concurrency {key})"
                    )
                points[key] = (result, f.name)
        return points, errors

    @classmethod
    def gpus(cls, name):
        m = cls.PAIR.search(name)
        if m:
            return int(m.group(1)) * int(m.group(3)) + int(m.group(4)) * int(m.group(6))
        m = cls.ONE.search(name)
        if m:
            return int(m.group(1)) * int(m.group(3))
        return None

    @classmethod
    def normalise(cls, name, points):
        gpus = cls.gpus(name)
        if gpus is None:
            return
        for result, _ in points.values():
            def scaled(v):
                return v if gpus <= 0 else v * (GPUS_PER_NODE / gpus)
            for k in ("output_throughput", "request_throughput"):
                if k in result and result[k] is not None:
                    result[k + "_norm"] = scaled(result[k])
            tin, dur = result.get("total_input_tokens"), result.get("duration")
            if tin is not None and dur is not None and dur > 0:
                result["input_throughput_norm"] = scaled(tin / dur)

    @staticmethod
    def table(exps, metric):
        keys = sorted({k for pts in exps.values() for k in pts})
        cols = {}
        for name, pts in exps.items():
            vals = {}
            for k, (r, _) in pts.items():
                if metric in r and r[metric] is not None:
                    vals[k] = r[metric]
            cols[name] = [vals.get(k) for k in keys]
        df = pd.DataFrame(cols, index=keys)
        df.index.name = "Concurrency"
        return df


def original_tables(dirs, viz_py):
    """(tables by metric, {exp name: {key: file}}, problems) from the script or Original."""
    exps, files, problems = {}, {}, []
    if viz_py:
        spec = importlib.util.spec_from_file_location("viz_original", viz_py)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for d in dirs:
            name = Path(d).name
            data = mod.load_experiment_data(d)
            if data:
                exps[name] = data
            # Which file each key came from (the script does not keep it).
            pts, _ = Original.load(d)
            files[name] = {k: f for k, (_, f) in pts.items()}
        configs = {n: mod.parse_experiment_config(n) for n in exps}
        mod.add_normalized_metrics(exps, configs)
        tables = {m: mod.create_comparison_table(exps, m) for m in TABLE_METRICS}
        return tables, files, problems
    wrapped = {}
    for d in dirs:
        name = Path(d).name
        pts, errors = Original.load(d)
        problems += errors
        if pts:
            Original.normalise(name, pts)
            wrapped[name] = pts
            files[name] = {k: f for k, (_, f) in pts.items()}
    tables = {m: Original.table(wrapped, m) for m in TABLE_METRICS}
    return tables, files, problems


def plot_like_the_original(tables, out_dir):
    """The comprehensive figure's series, drawn with matplotlib (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(20, 6))
    tp, tt, thr = (tables[m] for m in ("median_tpot_ms", "median_ttft_ms", "output_throughput_norm"))
    for name in tp.columns:
        s = tp[name].dropna()
        axes[0].plot(s.index, s.values, marker="o", label=name)
        s = tt[name].dropna()
        axes[1].plot(s.index, s.values, marker="o", label=name)
        both = pd.concat([tp[name], thr[name]], axis=1).dropna()
        both = both[both.iloc[:, 0] > 0]
        axes[2].plot(both.iloc[:, 0], both.iloc[:, 1], marker="o", label=name)
    for ax in axes[:2]:
        ax.set_yscale("log")
    axes[2].set_xscale("log")
    os.makedirs(out_dir, exist_ok=True)
    path = Path(out_dir) / "comprehensive_analysis.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def viz_points(path):
    """viz's long table: {(canonical dir, file name): row}."""
    rows = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            d = os.path.realpath(r["directory"])
            rows[(d, r["file"])] = r
    return rows


def num(v):
    if v is None:
        return None
    if isinstance(v, str):
        return float(v) if v.strip() else None
    f = float(v)
    return None if math.isnan(f) else f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", required=True, help="viz --csv's <name>_points.csv")
    ap.add_argument("--viz-py", default=None, help="a local copy of the original viz.py")
    ap.add_argument("--plot-dir", default=None)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()

    tables, files, problems = original_tables(a.dirs, a.viz_py)
    ours = viz_points(a.points)
    failures, compared, skipped, worst, shared_key = [], 0, 0, 0.0, 0
    matched = set()
    for d in a.dirs:
        name = Path(d).name
        real = os.path.realpath(d)
        ours_here = {f: r for (dd, f), r in ours.items() if dd == real}
        theirs = files.get(name, {})
        read_by_them = set(theirs.values())
        for f, r in ours_here.items():
            if r.get("aggregated") == "yes":
                continue
            if f not in read_by_them:
                mc = json.load(open(os.path.join(d, f))).get("max_concurrency")
                if mc is not None and mc >= 1e9 and any(k >= 1e9 for k in theirs):
                    # Uncapped request-rate points: the original run_bm.sh writes
                    # max_concurrency 1e9 for every rate, so viz.py keys them all alike and
                    # shows one of them; its own files behave the same. The one it shows is
                    # compared below.
                    shared_key += 1
                    continue
                why = (
                    "it has no max_concurrency"
                    if mc is None
                    else f"another file has the same max_concurrency ({mc}) and hides it"
                )
                failures.append(f"{d}/{f}: viz.py does not show this point: {why}")
        for key, f in theirs.items():
            row = ours_here.get(f)
            if row is None:
                failures.append(f"{d}/{f}: viz.py reads it (key {key}), viz has no point for it")
                continue
            matched.add((real, f))
            for m in TABLE_METRICS:
                t = tables[m]
                theirs_v = num(t.at[key, name]) if name in t.columns else None
                ours_v = num(row[m])
                if theirs_v is None and ours_v is None:
                    continue
                if theirs_v is None and m.endswith("_norm"):
                    # viz.py cannot tell the GPU count from the name; viz can (or shows raw).
                    skipped += 1
                    continue
                if theirs_v is None or ours_v is None:
                    failures.append(f"{d}/{f} {m}: viz.py {theirs_v} vs viz {ours_v}")
                    continue
                rel = abs(theirs_v - ours_v) / max(abs(theirs_v), abs(ours_v), 1e-300)
                worst = max(worst, rel)
                compared += 1
                if rel > 1e-9:
                    failures.append(f"{d}/{f} {m}: viz.py {theirs_v!r} vs viz {ours_v!r}")
    for p in problems:
        print(f"note: viz.py: {p}")
    if a.plot_dir:
        if a.viz_py:
            cmd = [sys.executable, a.viz_py, "--exps", *a.dirs, "--no-show-tables", "--plot-path", a.plot_dir]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            png = Path(a.plot_dir) / "comprehensive_analysis.png"
        else:
            png = plot_like_the_original(tables, a.plot_dir)
        if not png.is_file() or png.stat().st_size < 1000:
            failures.append(f"{png}: not written")
    print(
        f"compared {compared} numbers of {len(matched)} points in {len(a.dirs)} directories "
        f"({'the original viz.py' if a.viz_py else 'a re-implementation of viz.py'}); "
        f"largest relative difference {worst:.2e}; {skipped} normalised cells viz.py leaves "
        f"empty (GPU count not in the name) not compared; {shared_key} uncapped rate points "
        f"viz.py keys alike (max_concurrency 1e9, as the original run_bm.sh writes) not shown by it"
    )
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        sys.exit(1)


main()

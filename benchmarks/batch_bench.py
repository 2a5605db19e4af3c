"""Batch extraction over ../shared/data/sroie (50 receipts): executors side by side, in one run.

Measured, all with ``--kind receipt`` (RapidOCR, one OCR thread per worker):

* the baseline: a plain in-process loop of ``vision.documents.extract`` (no pipeline);
* the pipeline with the in-process executor (``--executor local``);
* the local process pool and a Dask ``LocalCluster``, each with 1 and 2 worker processes.

For each: files per second at steady state (from the moment every worker has handed back two
files, so worker start-up and the first imports are left out; those are shown as ``start-up``),
end to end files per second (everything, as a user waits for it), and the peak resident memory of
each worker (``ru_maxrss``). The executors run ``--rounds`` times (2), alternating, and each
keeps its best round. Then the peak memory per worker of the pool and of the LocalCluster at
50 and at 500 inputs (the 500 are the 50 repeated under other names).

Targets (issue #8): 2 workers >= 1.7 x one worker; Dask's overhead under 10 % against the process
pool; memory per worker flat from 50 to 500 inputs. The machine has 2 cores, shared: the load
average is printed beside each figure, and a loaded machine cannot show the 2-worker speed-up.

Run: python benchmarks/batch_bench.py [--quick] [--rounds N] [--repeat N] [--no-memory] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SROIE = ROOT.parent / "shared" / "data" / "sroie" / "img"
sys.path.insert(0, str(ROOT))


def load() -> float:
    return round(os.getloadavg()[0], 2)


def baseline_loop(files: list[Path]) -> dict[str, Any]:
    """The plain loop: extract each file in this process (the OCR engine warmed first, as a fair start)."""
    from vision.documents import extract

    extract(files[0], kind="receipt")
    before = load()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for f in files:
        extract(f, kind="receipt")
    seconds = time.perf_counter() - t0
    return {"name": "in-process loop (baseline)", "workers": 1, "files": len(files), "seconds": seconds,
            "steady_fps": len(files) / seconds, "e2e_fps": len(files) / seconds, "startup_s": 0.0,
            "peak_rss_mb": None, "cpu_per_file": (time.process_time() - cpu0) / len(files), "load": (before, load())}


def pipeline_run(name: str, executor: Any, src: Path, n: int, workers: int) -> dict[str, Any]:
    """One batch into a fresh output; result arrival times give the steady-state rate."""
    from vision.batch import run_batch

    arrivals: list[float] = []

    def progress(report: Any) -> None:
        while len(arrivals) < report.finished:
            arrivals.append(time.perf_counter())

    from vision.batch import LocalExecutor

    workers_in_driver = isinstance(executor, LocalExecutor)
    out = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    before = load()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    try:
        report = run_batch(str(src), out, kind="receipt", executor=executor, progress=progress, dashboard=False)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    wall = time.perf_counter() - t0
    driver_cpu = time.process_time() - cpu0
    if report.done + report.failed != n:
        raise SystemExit(f"{name}: {report.done} done, {report.failed} failed of {n}: {report.failures[:3]}")
    k = min(len(arrivals) - 2, 2 * workers)  # every worker has handed back two files
    steady = (len(arrivals) - 1 - k) / (arrivals[-1] - arrivals[k]) if len(arrivals) - 1 > k else None
    return {"name": name, "workers": workers, "files": n, "seconds": wall, "steady_fps": steady,
            "e2e_fps": n / wall, "startup_s": (arrivals[k] - t0) if arrivals else None,
            "peak_rss_mb": max(report.worker_peak_rss_mb.values(), default=None),
            "worker_rss_mb": sorted(report.worker_peak_rss_mb.values()), "failed": report.failed,
            # in-process, the work's CPU is the driver's own: count it once
            "cpu_per_file": (0.0 if workers_in_driver else report.worker_cpu_seconds / max(1, report.done))
            + driver_cpu / n,
            "load": (before, load())}


def make_repeated(files: list[Path], times: int, where: Path) -> Path:
    """``times`` x the files under other names (hard links where possible, else copies)."""
    where.mkdir(parents=True, exist_ok=True)
    for r in range(times):
        for f in files:
            target = where / f"r{r:02d}-{f.name}"
            try:
                os.link(f, target)
            except OSError:
                shutil.copyfile(f, target)
    return where


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 receipts, memory at 4 and 8 (a smoke run)")
    parser.add_argument("--repeat", type=int, default=10, help="the larger input is the set repeated N times")
    parser.add_argument("--rounds", type=int, default=2, help="run the executors this many times, alternating; "
                        "each keeps its best round")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--no-memory", action="store_true", help="skip the runs over the repeated set")
    args = parser.parse_args()
    if not SROIE.is_dir():
        print(f"no data at {SROIE}: nothing to measure")
        return 0
    try:
        from vision.batch.dask_executor import DaskExecutor
    except Exception as exc:  # MissingExtraError
        print(f"skipped: {exc}")
        return 0
    from vision.batch import LocalExecutor, ProcessExecutor

    files = sorted(SROIE.glob("*.jpg"))
    repeat = args.repeat
    if args.quick:
        files, repeat, args.rounds = files[:4], 2, 1
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    with tempfile.TemporaryDirectory(prefix="batch-bench-in-") as tmp:
        src = Path(tmp) / "set"
        src.mkdir()
        for f in files:
            (src / f.name).symlink_to(f)
        n = len(files)
        print(f"batch benchmark: {n} SROIE receipts, kind receipt; {os.cpu_count()} cores; load {load()}")
        rows = [baseline_loop(files)]
        runs = [("pipeline, in-process executor", lambda: LocalExecutor(), 1),
                ("process pool, 1 worker", lambda: ProcessExecutor(1), 1),
                ("process pool, 2 workers", lambda: ProcessExecutor(2), 2),
                ("Dask LocalCluster, 1 worker", lambda: DaskExecutor(n_workers=1, dashboard=False), 1),
                ("Dask LocalCluster, 2 workers", lambda: DaskExecutor(n_workers=2, dashboard=False), 2)]
        if args.quick:
            runs = [r for r in runs if "in-process" not in r[0]]
        # the runs alternate, round after round, and each keeps its best round: on a shared 2-core
        # machine a neighbour's burst lands on one run, not on one executor
        best: dict[str, dict[str, Any]] = {}
        for round_no in range(1, args.rounds + 1):
            for name, factory, workers in runs:
                row = pipeline_run(name, factory(), src, n, workers)
                print(f"  round {round_no}, {name}: {fmt(row['steady_fps'])} files/s steady, "
                      f"{fmt(row['cpu_per_file'])} CPU s/file (load {row['load']})", flush=True)
                if name not in best or (row["steady_fps"] or 0) > (best[name]["steady_fps"] or 0):
                    best[name] = row
        rows += [best[name] for name, _, _ in runs]
        big = make_repeated(files, repeat, Path(tmp) / "repeated")
        memory = []
        for name, factory in () if args.no_memory else (("process pool, 2 workers", lambda: ProcessExecutor(2)),
                              ("Dask LocalCluster, 2 workers", lambda: DaskExecutor(n_workers=2, dashboard=False))):
            memory.append(pipeline_run(f"{name} x{repeat}", factory(), big, n * repeat, 2))
            print(f"  {memory[-1]['name']}: peak {fmt(memory[-1]['peak_rss_mb'], '.0f')} MB per worker", flush=True)

    print()
    print(f"{'run':<34} {'steady f/s':>10} {'e2e f/s':>8} {'start-up':>9} {'CPU s/file':>10} {'peak MB/worker':>15} "
          f"{'load':>12}")
    for r in rows:
        print(f"{r['name']:<34} {fmt(r['steady_fps']):>10} {fmt(r['e2e_fps']):>8} {fmt(r['startup_s'], '.1f'):>8}s "
              f"{fmt(r['cpu_per_file']):>10} {fmt(r['peak_rss_mb'], '.0f'):>15} {r['load']!s:>12}")
    by = {r["name"]: r for r in rows}

    def ratio(a: str, b: str, key: str = "steady_fps") -> float | None:
        x, y = by[a].get(key), by[b].get(key)
        return x / y if x and y else None

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("MET" if ok else "NOT MET")

    def pct(r: float | None) -> str:
        return "-" if r is None else f"{(r - 1) * 100:+.1f} %"

    pool_scale = ratio("process pool, 2 workers", "process pool, 1 worker")
    dask_scale = ratio("Dask LocalCluster, 2 workers", "Dask LocalCluster, 1 worker")
    over2 = ratio("process pool, 2 workers", "Dask LocalCluster, 2 workers")
    over1 = ratio("process pool, 1 worker", "Dask LocalCluster, 1 worker")
    cpu2 = ratio("Dask LocalCluster, 2 workers", "process pool, 2 workers", "cpu_per_file")
    cpu1 = ratio("Dask LocalCluster, 1 worker", "process pool, 1 worker", "cpu_per_file")
    flat: list[float] = []
    if memory:
        pool_mem = (by["process pool, 2 workers"]["peak_rss_mb"], memory[0]["peak_rss_mb"])
        dask_mem = (by["Dask LocalCluster, 2 workers"]["peak_rss_mb"], memory[1]["peak_rss_mb"])
        flat = [b / a for a, b in (pool_mem, dask_mem) if a and b]
        print()
        print(f"peak memory per worker, {n} -> {n * repeat} inputs: process pool {fmt(pool_mem[0], '.0f')} -> "
              f"{fmt(pool_mem[1], '.0f')} MB, LocalCluster {fmt(dask_mem[0], '.0f')} -> {fmt(dask_mem[1], '.0f')} MB")
        print(f"throughput at {n * repeat} inputs (steady): process pool {fmt(memory[0]['steady_fps'])}, "
              f"LocalCluster {fmt(memory[1]['steady_fps'])} files/s")
    print()
    quick_note = " (--quick: a smoke run, too few files for these verdicts to mean anything)"
    print("targets:" + (quick_note if args.quick else ""))
    print(f"  2 workers >= 1.7 x 1 worker: process pool {fmt(pool_scale)} x "
          f"[{verdict(pool_scale and pool_scale >= 1.7)}], LocalCluster {fmt(dask_scale)} x "
          f"[{verdict(dask_scale and dask_scale >= 1.7)}]")
    print(f"  Dask overhead < 10 % vs the process pool (files/s): 2 workers {pct(over2)}, 1 worker {pct(over1)} "
          f"[{verdict(over2 is not None and over2 < 1.10)}]; CPU per file: 2 workers {pct(cpu2)}, "
          f"1 worker {pct(cpu1)} [{verdict(cpu2 is not None and cpu2 < 1.10)}]")
    print(f"  memory per worker flat ({n} -> {n * repeat}): ratios {', '.join(fmt(f) for f in flat) or '-'} "
          f"[{verdict(bool(flat) and max(flat) <= 1.10) if flat else 'n/a'}]")
    if args.json:
        print(json.dumps({"runs": rows, "memory": memory, "scale": {"pool": pool_scale, "dask": dask_scale},
                          "dask_vs_pool": {"2": over2, "1": over1, "cpu_2": cpu2, "cpu_1": cpu1}}, indent=1,
                         default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

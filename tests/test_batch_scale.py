"""`vision batch`: one pipeline, three executors (in-process, process pool, Dask), exactly once and resumable.

The Dask tests run a real ``LocalCluster`` of 2 worker processes over TCP on 127.0.0.1, shared by
this module (it is started the way ``--local-cluster`` starts one); models are the fake OpenAI
server, whose recorded request times check the shared rate limit.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vision.batch import Coordinator, Limits, iter_inputs, iter_jsonl, run_batch
from vision.batch.coordinator import LocalLink
from vision.batch.executors import LocalExecutor, ProcessExecutor
from vision.batch.pipeline import build_task
from vision.batch.sources import InputFile
from vision.batch.work import process_file
from vision.errors import BatchError, MissingExtraError
from vision.testing import FakeServer

from .conftest import _SCRUB, ASSETS, ROOT, TESSERACT, has_rapidocr, jpeg_bytes, text_image

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
pa = pytest.importorskip("pyarrow", reason="the dask extra is not installed")

needs_ocr = pytest.mark.skipif(not (TESSERACT or has_rapidocr()), reason="no OCR engine")
MODEL = "openai/gpt-4.1-mini"
VOLATILE = {"seconds", "worker"}


# -- inputs ------------------------------------------------------------------------------------------


def _photos(folder: Path, n: int) -> Path:
    """``n`` small distinct JPEGs (asks with ``--kind none`` need no OCR: quick)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"photo-{i:02d}.jpg").write_bytes(jpeg_bytes(64, 48, seed=i))
    return folder


@pytest.fixture
def receipts(tmp_path: Path) -> Path:
    """The sample receipt, two generated ones, a corrupt JPEG and a file that is not an input."""
    d = tmp_path / "receipts"
    d.mkdir()
    (d / "a-receipt.png").write_bytes((ASSETS / "receipt.png").read_bytes())
    for i, (item, amount) in enumerate([("Coffee beans", "8.50"), ("Green tea", "4.25")]):
        text_image(["CORNER SHOP", f"Date: 0{i + 1}/02/2025", f"1 x {item} {amount}", f"TOTAL {amount}"],
                   size=40, width=700).save(d / f"gen-{i}.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (d / "notes.txt").write_text("not an input")
    return d


def _records(out: Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(out / "results.jsonl"))


def _stable(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["key"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in records}


def _chat_times(server: FakeServer) -> list[float]:
    return sorted(r.received_at for r in server.requests_for("openai", "/v1/chat/completions"))


# -- the cluster -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """2 worker processes on 127.0.0.1 over TCP, with an environment as clean as the tests' own."""
    from vision.batch.dask_executor import local_cluster

    with pytest.MonkeyPatch.context() as mp:
        for name in _SCRUB:
            mp.delenv(name, raising=False)
        mp.setenv("VISION_CONFIG", str(ROOT / "tests" / "no-such-config.toml"))
        mp.setenv("VISION_HISTORY", "0")
        c = local_cluster(2, dashboard=False)
    try:
        yield c
    finally:
        c.close()


def _dask(cluster: Any) -> Any:
    from vision.batch.dask_executor import DaskExecutor

    with distributed.Client(cluster.scheduler_address) as client:  # a killed worker may still be restarting
        client.wait_for_workers(2, timeout=60)
    return DaskExecutor(scheduler=cluster.scheduler_address, dashboard=False)


# -- pieces -------------------------------------------------------------------------------------------


def test_coordinator_spreads_asks_and_a_429_delays_everyone() -> None:
    now = [100.0]
    c = Coordinator(Limits(rpm=60, tpm=6000), clock=lambda: now[0])
    assert [c.slot(tokens=10) for _ in range(3)] == [0.0, 1.0, 2.0], "one request a second, in order"
    now[0] = 110.0
    assert c.slot(tokens=3000) == 0.0
    assert c.slot(tokens=10) == pytest.approx(30.0), "3000 tokens are half a minute of a 6000 TPM budget"
    c2 = Coordinator(Limits(rpm=600), clock=lambda: now[0])
    assert c2.rate_limited(retry_after=2.5) == 2.5
    assert c2.wait() == pytest.approx(2.5), "every worker sees the 'not before' time"
    assert c2.slot() == pytest.approx(2.5)
    assert c2.rate_limited(None) == 2.0 and c2.rate_limited(None) == 4.0, "no Retry-After: a growing backoff"


def test_coordinator_budget_and_paid_answers() -> None:
    c = Coordinator(Limits(budget_usd=0.01, spent_usd=0.002))
    assert c.begin("a", usd=0.004)["ok"] and c.begin("b", usd=0.003)["ok"]
    refused = c.begin("c", usd=0.002)
    assert not refused["ok"] and "budget" in refused["reason"], "0.002 spent + 0.007 reserved + 0.002 > 0.01"
    assert not c.begin("d", usd=0.0001)["ok"], "once reached, no new asks"
    c.settle("a", cost_usd=0.001, answer={"text": "A"})
    assert c.begin("a", usd=0.004)["answer"] == {"text": "A"}, "a retried task finds the paid answer"
    again = c.begin("b", usd=0.003)  # b's worker died mid-request; its retry starts again
    assert again["possibly_billed_before"] and c.lost_attempts == 1, "counted as spent: it may have been billed"
    assert not again["ok"], "the budget is used up: not asked again"
    snap = c.snapshot()
    assert snap["spent_usd"] == pytest.approx(0.002 + 0.001 + 0.003) and snap["refused"] == 3
    c.forget(["a"])
    assert c.pending_answers() == {}
    with pytest.raises(ValueError, match="unknown coordinator operation"):
        c.handle("rm_rf")
    assert not Coordinator(Limits(budget_usd=1)).begin("x", usd=None)["ok"], "an unknown price keeps no budget"


def test_inputs_dirs_globs_and_fsspec_urls(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    d = _photos(tmp_path / "in", 3)
    (d / "sub").mkdir()
    (d / "sub" / "deep.png").write_bytes((ASSETS / "receipt.png").read_bytes())
    (d / "readme.md").write_text("skipped")
    names = [i.name for i in iter_inputs(str(d))]
    assert names == ["photo-00.jpg", "photo-01.jpg", "photo-02.jpg", "deep.png"], "files, then sub-folders"
    assert all(i.size and i.mtime_ns for i in iter_inputs(str(d)))
    assert [i.name for i in iter_inputs(f"file://{d}")] == names
    assert sorted(i.name for i in iter_inputs(str(d / "**" / "*.png"))) == ["deep.png"]
    lazy = iter_inputs(str(d))
    assert next(lazy).name == "photo-00.jpg", "an iterator: nothing listed ahead"
    mem = fsspec.filesystem("memory")
    mem.pipe("/vt-inputs/x/a.jpg", jpeg_bytes(32, 32))
    mem.pipe("/vt-inputs/x/b.txt", b"no")
    mem.pipe("/vt-inputs/x/y/c.png", b"png?")
    try:
        assert [i.location for i in iter_inputs("memory://vt-inputs/x")] == [
            "memory:///vt-inputs/x/a.jpg", "memory:///vt-inputs/x/y/c.png"]
        assert [i.name for i in iter_inputs("memory://vt-inputs/x/**/*.png")] == ["c.png"]
    finally:
        mem.rm("/vt-inputs", recursive=True)
    with pytest.raises(MissingExtraError, match="vision-toolkit\\[dask\\]") as err, pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "fsspec", None)
        list(iter_inputs("memory://anything"))
    assert err.value.extra == "dask"


def test_memory_urls_in_process_with_parquet_and_resume(tmp_path: Path) -> None:
    """fsspec URLs end to end (memory:// lives in this process, so the in-process executor), Parquet,
    a crash's leftovers, and a re-run that does only what is left."""
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    for i in range(3):
        mem.pipe(f"/vt-batch/{i}.jpg", jpeg_bytes(40, 30, seed=i))
    out = tmp_path / "out"
    try:
        report = run_batch("memory://vt-batch", out, kind="none", ask="What is it?", model="local",
                           executor="local", parquet=True)
        assert (report.done, report.failed) == (3, 0)
        recs = _records(out)
        assert {r["source"] for r in recs} == {f"memory:///vt-batch/{i}.jpg" for i in range(3)}
        assert all(r["ask"]["model"] == "local" and r["ask"]["answer"] for r in recs)
        # a crash: a cut line at the end of the JSONL, a half-written Parquet part never renamed
        (out / "parquet" / "kind=none" / ".part-x.parquet.1234.tmp").write_bytes(b"PAR1 half")
        with open(out / "results.jsonl", "a") as fh:
            fh.write('{"key": "memory:///vt-batch/9.jpg#cut')
        mem.pipe("/vt-batch/3.jpg", jpeg_bytes(40, 30, seed=3))
        again = run_batch("memory://vt-batch", out, kind="none", ask="What is it?", model="local",
                          executor="local", parquet=True)
        assert (again.done, again.skipped) == (1, 3), "unchanged bytes are not done twice"
    finally:
        mem.rm("/vt-batch", recursive=True)
    keys = [r["key"] for r in _records(out)]
    assert len(keys) == 4 == len(set(keys))
    import pyarrow.dataset as ds

    table = ds.dataset(out / "parquet", partitioning="hive").to_table()
    assert sorted(table.column("key").to_pylist()) == sorted(keys), "Parquet holds each record once"
    assert set(table.column("kind").to_pylist()) == {"none"}
    assert not list((out / "parquet").rglob(".part-*")), "the crash's leftover is gone"
    with pytest.raises(BatchError, match="another task"):
        run_batch("memory://vt-batch", out, kind="receipt", executor="local")


def test_one_writer_per_output_and_parquet_needs_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = _photos(tmp_path / "p", 1)
    out = tmp_path / "out"
    run_batch(str(photos), out, kind="none", ask="?", model="local", executor="local")
    from vision.batch import ResultStore

    with ResultStore(out / "results.jsonl"), pytest.raises(BatchError, match="another batch is writing"):
        run_batch(str(photos), out, kind="none", ask="?", model="local", executor="local")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match="Parquet output needs the 'dask' extra"):
        run_batch(str(photos), out, kind="none", ask="?", model="local", executor="local", parquet=True)


def test_reused_answer_costs_nothing_more(api_env: FakeServer, tmp_path: Path) -> None:
    """An answer paid for by an attempt whose worker died (or by an interrupted run) is used, not bought again."""
    photo = _photos(tmp_path / "p", 1) / "photo-00.jpg"
    task = build_task(kind="none", ask="What is it?", model=MODEL)
    link = LocalLink(Coordinator(Limits()))
    first = process_file(task, InputFile(str(photo)), link)
    assert first["status"] == "done" and len(api_env.requests) == 1
    again = process_file(task, InputFile(str(photo)), link)  # the same ask, its answer not yet written
    assert again["record"]["ask"]["reused_answer"] and len(api_env.requests) == 1
    assert again["record"]["ask"]["answer"] == first["record"]["ask"]["answer"]


def test_budget_stops_new_asks_and_a_rerun_finishes(api_env: FakeServer, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p", 6)
    api_env.script("A photo.", usage={"prompt_tokens": 1000, "completion_tokens": 1000}, times=None)  # $0.002 each
    out = tmp_path / "out"
    report = run_batch(str(photos), out, kind="none", ask="What is it?", model=MODEL, executor="process",
                       workers=2, budget_usd=0.005)
    assert report.budget_reached and report.done >= 1 and report.not_asked >= 1
    costs = [r["ask"]["cost_usd"] for r in _records(out)]
    assert sum(costs) <= 0.005 and report.spent_usd == pytest.approx(sum(costs)), "summed across workers"
    assert len(api_env.requests) == report.done, "no ask beyond the budget was sent"
    assert any(r.get("not_asked") for r in iter_jsonl(out / "failures.jsonl"))
    rest = run_batch(str(photos), out, kind="none", ask="What is it?", model=MODEL, executor="process", workers=2,
                     budget_usd=1.0)
    assert rest.done + report.done == 6 and rest.skipped == report.done and not rest.budget_reached
    assert len(api_env.requests) == 6, "each photo asked exactly once over both runs"
    assert list(iter_jsonl(out / "failures.jsonl")) == [], "nothing left failing"
    with pytest.raises(BatchError, match=r"price of .* is unknown"):
        run_batch(str(photos), tmp_path / "o2", kind="none", ask="?", model="openai/my-own-model", budget_usd=1)


def test_process_pool_survives_a_killed_worker(api_env: FakeServer, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p", 8)
    killed: list[int] = []

    def kill_one(report: Any) -> None:
        if report.done >= 2 and not killed:
            pid = int(next(iter(report.worker_peak_rss_mb)).rsplit(":", 1)[1])
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    ex = ProcessExecutor(2)
    report = run_batch(str(photos), tmp_path / "out", kind="none", ask="What is it?", model=f"{MODEL}-slow-0.3",
                       executor=ex, progress=kill_one)
    assert killed and ex.restarts == 1
    keys = [r["key"] for r in _records(tmp_path / "out")]
    assert report.done == 8 == len(keys) == len(set(keys)) and report.failed == 0
    lost = report.coordinator["lost_attempts"]
    assert len(api_env.requests) - 8 <= lost, "an ask is repeated only when its worker died mid-request"
    flagged = [r for r in _records(tmp_path / "out") if r["ask"].get("possibly_billed_twice")]
    assert len(flagged) == lost


def test_abandoning_a_run_starts_nothing_more(api_env: FakeServer, tmp_path: Path) -> None:
    """A second Ctrl-C: the pool's workers stop at once (inputs queued inside the pool would still start
    and pay otherwise); what was being sent is counted, and the next run does the rest."""
    photos = _photos(tmp_path / "p", 8)

    def second_ctrl_c(report: Any) -> None:
        if report.done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(str(photos), tmp_path / "out", kind="none", ask="What is it?", model=f"{MODEL}-slow-0.5",
                  executor="process", workers=2, progress=second_ctrl_c)
    sent = len(api_env.requests)
    time.sleep(1.5)  # an input that still started would reach the server now
    assert len(api_env.requests) == sent <= 4, "2 answered, at most 2 being sent, none started after"
    rest = run_batch(str(photos), tmp_path / "out", kind="none", ask="What is it?", model=f"{MODEL}-slow-0.5",
                     executor="process", workers=2)
    assert (rest.skipped, rest.done) == (2, 6) and len(api_env.requests) == sent + 6


@needs_ocr
def test_explain_each_document(api_env: FakeServer, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "receipt.png").write_bytes((ASSETS / "receipt.png").read_bytes())
    report = run_batch(str(d), tmp_path / "out", kind="receipt", explain=True, model=MODEL, executor="local")
    assert report.done == 1 and report.asked == 1 and report.cost_usd > 0
    [rec] = _records(tmp_path / "out")
    assert rec["total"] == "15.96" and rec["ask"]["task"] == "explain"
    assert rec["ask"]["explanation"]["summary"] and rec["ask"]["cost_usd"] == report.cost_usd
    assert "response_format" in api_env.requests[0].json, "asked for the explanation's JSON schema"


def test_cli_usage_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vision", "batch", *args], capture_output=True, text=True,
                              timeout=60, check=False, cwd=tmp_path)

    both = run(str(tmp_path), "--scheduler", "tcp://127.0.0.1:8786", "--local-cluster", "2")
    assert both.returncode == 2 and "not both" in both.stderr
    assert run(str(tmp_path), "--rate", "60").returncode == 2
    none = run(str(tmp_path), "--kind", "none")
    assert none.returncode == 2 and "needs a question" in none.stderr
    bad = run(str(tmp_path), "--executor", "spark")
    assert bad.returncode == 2 and "local, process, dask" in bad.stderr
    assert not (tmp_path / "batch-out").exists(), "nothing written for a command that cannot run"


def test_missing_dask_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from vision.batch.executors import make_executor

    monkeypatch.delitem(sys.modules, "vision.batch.dask_executor", raising=False)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'vision-toolkit\[dask\]'"):
        make_executor("dask")


def test_unreachable_scheduler_is_one_clear_error() -> None:
    from vision.batch.dask_executor import DaskExecutor

    ex = DaskExecutor(scheduler="tcp://127.0.0.1:9", connect_timeout=1)
    with pytest.raises(BatchError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        ex.start(None)


# -- on a real LocalCluster ------------------------------------------------------------------------


@needs_ocr
@pytest.mark.slow
def test_dask_equals_in_process_and_reports_the_corrupt_file(cluster: Any, receipts: Path, tmp_path: Path) -> None:
    local = run_batch(str(receipts), tmp_path / "local", kind="receipt", executor=LocalExecutor())
    dask = run_batch(str(receipts), tmp_path / "dask", kind="receipt", executor=_dask(cluster), parquet=True)
    assert (local.done, local.failed) == (dask.done, dask.failed) == (3, 1)
    assert _stable(_records(tmp_path / "dask")) == _stable(_records(tmp_path / "local"))
    assert any(r["total"] == "15.96" for r in _records(tmp_path / "dask"))
    [failure] = list(iter_jsonl(tmp_path / "dask" / "failures.jsonl"))
    assert failure["source"].endswith("broken.jpg") and "truncated" in failure["error"]
    workers = {r["worker"] for r in _records(tmp_path / "dask")}
    assert all(w.rsplit(":", 1)[1] != str(os.getpid()) for w in workers), "the work ran in the cluster"
    import pyarrow.dataset as ds

    assert ds.dataset(tmp_path / "dask" / "parquet", partitioning="hive").count_rows() == 3


@pytest.mark.slow
def test_dask_killed_worker_output_complete_without_duplicates(cluster: Any, api_env: FakeServer,
                                                               tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p", 10)
    killed: list[str] = []
    with distributed.Client(cluster.scheduler_address) as spy:
        pids = spy.run(os.getpid)

        def kill_busy_worker(report: Any) -> None:
            if report.done >= 2 and not killed:
                busy = [w for w, keys in spy.processing().items() if keys]
                if busy:
                    killed.append(busy[0])
                    os.kill(pids[busy[0]], signal.SIGKILL)

        report = run_batch(str(photos), tmp_path / "out", kind="none", ask="What is it?",
                           model=f"{MODEL}-slow-0.4", executor=_dask(cluster), progress=kill_busy_worker)
    assert killed, "a worker was killed while it had a task"
    recs = _records(tmp_path / "out")
    keys = [r["key"] for r in recs]
    assert report.done == 10 == len(keys) == len(set(keys)) and report.failed == 0
    lost = report.coordinator["lost_attempts"]
    assert len(api_env.requests) - 10 <= lost <= 1, "at most the ask in flight on the killed worker is repeated"
    assert len([r for r in recs if r["ask"].get("possibly_billed_twice")]) == lost


@pytest.mark.slow
def test_dask_shared_rate_limit_holds_across_workers(cluster: Any, api_env: FakeServer, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p", 8)
    report = run_batch(str(photos), tmp_path / "out", kind="none", ask="What is it?", model=MODEL,
                       executor=_dask(cluster), rate=120)  # one request every 0.5 s, both workers together
    assert report.done == 8
    assert len({r["worker"] for r in _records(tmp_path / "out")}) == 2, "both workers asked"
    times = _chat_times(api_env)
    assert len(times) == 8
    # n requests span at least (n - 1) x 0.5 s, less 0.25 s for the jitter between a slot and the request's
    # arrival on a busy machine (without the shared limiter the 8 arrive within a fraction of a second)
    short = [(i, j) for i in range(8) for j in range(i + 1, 8) if times[j] - times[i] < (j - i) * 0.5 - 0.25]
    assert not short, [round(b - a, 3) for a, b in itertools.pairwise(times)]


@pytest.mark.slow
def test_dask_a_429_slows_every_worker(cluster: Any, api_env: FakeServer, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p", 6)
    api_env.fail_next(1, status=429, retry_after_ms=1500)
    report = run_batch(str(photos), tmp_path / "out", kind="none", ask="What is it?", model=MODEL,
                       executor=_dask(cluster), rate=120)  # 0.5 s apart: the 429 is known before the next ask
    assert report.done == 6 and report.coordinator["rate_limited"] == 1
    times = _chat_times(api_env)
    assert len(times) == 7, "six answers and the one 429"
    assert times[1] - times[0] >= 1.45, f"no worker asked during the 1.5 s Retry-After ({times[1] - times[0]:.2f} s)"


@pytest.mark.slow
def test_cli_on_an_existing_scheduler(cluster: Any, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p", 3)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "vision", "batch", str(photos), "--kind", "none", "--ask", "What?",
                             "-m", "local", "--scheduler", cluster.scheduler_address, "--parquet", "--out", str(out),
                             "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert f"Dask cluster at {cluster.scheduler_address}" in result.stderr
    report = json.loads(result.stdout)
    assert report["done"] == 3 and report["shared"]["asks"] == 3, "the limiter on the scheduler counted them"
    import pyarrow.dataset as ds

    assert ds.dataset(out / "parquet", partitioning="hive").count_rows() == 3


@pytest.mark.slow
def test_cli_local_cluster_interrupted_then_resumed(api_env: FakeServer, tmp_path: Path) -> None:
    """Ctrl-C in a terminal (SIGINT to the whole process group): the files in flight finish, their asks
    are written, the run exits 130; the same command again does only the rest. No ask is made twice."""
    photos = _photos(tmp_path / "p", 12)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vision", "batch", str(photos), "--kind", "none", "--ask", "What is it?",
           "--model", f"{MODEL}-slow-0.5", "--local-cluster", "2", "--out", str(out), "--json"]
    env = {**os.environ, "OPENAI_BASE_URL": api_env.openai_base_url}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(_records(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "stopping: finishing" in stderr and "run the same command again to resume" in stderr
    first = json.loads(stdout)
    assert first["interrupted"] and 2 <= first["done"] < 12 and first["abandoned"] == 0
    assert len(api_env.requests) == first["done"], "every ask in flight was finished and written"
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["skipped"] == first["done"] and second["done"] == 12 - first["done"]
    keys = [r["key"] for r in _records(out)]
    assert len(keys) == 12 == len(set(keys)) and len(api_env.requests) == 12

"""Generators, jobs and provenance against the fake OpenAI and Replicate servers (real clients)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vision.bridge import JobRunner, JobStore, imagine, plan_imagine, read_index, read_provenance
from vision.bridge.jobs import Job
from vision.bridge.provenance import read_png_text
from vision.config import reload_config
from vision.errors import (
    BudgetExceededError,
    ConfigurationError,
    GenerationError,
    GenerationInterrupted,
    GenerationTimeoutError,
    ModelCapabilityError,
    OutputDownloadError,
    RefusalError,
    ServiceGoneError,
    UnknownModelError,
)
from vision.testing import FakeServer

FLUX = "replicate/black-forest-labs/flux-schnell"
OPENAI_KEY = "sk-test-0123456789abcdef"
REPLICATE_KEY = "r8_test0123456789abcdef"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "gallery"


def all_written_text(*dirs: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for d in dirs for p in d.rglob("*") if p.is_file())


def assert_provenance(files: list[Path], out: Path) -> list[dict[str, Any]]:
    """Every file has a sidecar with a complete record, PNGs carry it too, and the index lists them."""
    records = []
    index = {e["file"]: e for e in read_index(out)}
    for f in files:
        side = json.loads(f.with_name(f.name + ".json").read_text())
        assert side["file"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
        rec = side["provenance"]
        for key in ("source", "writer", "prompt", "generator", "inputs", "seed", "job_id", "timings",
                    "estimated_cost_usd", "created_at"):
            assert key in rec, key
        assert rec["generator"]["model"] and rec["writer"]["prompt_version"]
        if f.suffix == ".png":
            assert json.loads(read_png_text(f) or "null") == rec, "the PNG text chunk holds the same record"
        assert read_provenance(f) == rec
        assert index[f.name]["job_id"] == rec["job_id"]
        records.append(rec)
    return records


def test_openai_images_b64_output(api_env: FakeServer, out: Path) -> None:
    gens = imagine("a red apple on a table", image_model="openai/gpt-image-2", n=2, aspect_ratio="3:2",
                   style="photo", out_dir=out)
    [gen] = gens
    body = api_env.requests_for("openai", "/v1/images/generations")[0].json
    assert body["model"] == "gpt-image-2" and body["n"] == 2 and body["size"] == "1536x1024"
    assert body["prompt"].startswith("A red apple on a table. ")
    assert "response_format" not in body, "GPT-image models always answer b64_json"
    assert len(gen.files) == 2 and all(f.suffix == ".png" for f in gen.files)
    for f in gen.files:
        with Image.open(f) as img:
            img.load()
            assert img.format == "PNG" and img.size == (96, 64)
    recs = assert_provenance(gen.files, out)
    assert recs[0]["generator"] == {"provider": "openai", "model": "gpt-image-2", "version": None,
                                    "api": "openai-images"}
    assert recs[0]["output_ref"].startswith("data:image/png;base64,<")
    assert recs[0]["estimated_cost_usd"] == pytest.approx(0.084)


def test_replicate_prediction_starts_processes_and_succeeds(api_env: FakeServer, out: Path) -> None:
    api_env.prediction_seconds = 0.4
    seen: list[tuple[str, float | None]] = []
    [gen] = imagine("a lighthouse at dawn", style="watercolour", n=2, seed=7, out_dir=out,
                    on_update=lambda j: seen.append((j.status, j.progress)))
    statuses = [s for s, _ in seen]
    assert statuses[0] == "starting" and "processing" in statuses and statuses[-1] == "completed"
    progress = [p for s, p in seen if s == "processing" and p is not None]
    assert progress == sorted(progress) and len(set(progress)) >= 2, "progress parsed from the tqdm-style logs"
    create = api_env.requests_for("replicate", "/v1/models/black-forest-labs/flux-schnell/predictions")[0]
    assert create.json["input"] == {"prompt": gen.prompt, "num_outputs": 2, "seed": 7}
    assert "prefer" not in create.headers, "never block on create: the job id is recorded first"
    job = JobStore().get(gen.job_id)
    assert job.status == "completed" and job.provider_job_id and "100%|" in (job.logs or "")
    assert job.version and len(gen.files) == 2 and {f.suffix for f in gen.files} == {".webp"}
    recs = assert_provenance(gen.files, out)
    assert recs[0]["provider_job_id"] == job.provider_job_id and recs[0]["seed"] == 7


def test_failed_prediction_is_a_generation_error_with_logs(api_env: FakeServer, out: Path) -> None:
    with pytest.raises(GenerationError, match="CUDA out of memory") as info:
        imagine("a cat", image_model="replicate/black-forest-labs/flux-schnell-fail", out_dir=out)
    job = JobStore().get(info.value.job_id or "")
    assert job.status == "failed" and "CUDA" in (job.error or "")
    assert info.value.logs is not None
    assert not out.exists() or not any(out.iterdir())


def test_content_policy_refusals_carry_the_reason(api_env: FakeServer, out: Path) -> None:
    api_env.script(model="black-forest-labs/*", fault="refuse")
    with pytest.raises(RefusalError) as info:
        imagine("a cat", out_dir=out)
    assert "NSFW content detected" in (info.value.reason or "")
    api_env.script(model="gpt-image-*", fault="refuse")
    with pytest.raises(RefusalError) as info:
        imagine("a cat", image_model="openai/gpt-image-2", out_dir=out)
    assert "safety system" in (info.value.reason or "")
    assert [j.status for j in JobStore().list()] == ["failed", "failed"]


def test_rate_limited_create_is_retried(api_env: FakeServer, out: Path) -> None:
    api_env.fail_next(1, status=429, retry_after_ms=20, model="black-forest-labs/*")
    [gen] = imagine("a cat", out_dir=out)
    creates = api_env.requests_for("replicate", "/v1/models/black-forest-labs/flux-schnell/predictions")
    assert len(creates) == 2 and len(gen.files) == 1


def test_data_uri_outputs(api_env: FakeServer, out: Path) -> None:
    api_env.generation_delivery = "data"  # type: ignore[attr-defined]
    [gen] = imagine("a cat", output_format="png", out_dir=out)
    assert gen.files[0].suffix == ".png" and not api_env.requests_for("files")
    rec = assert_provenance(gen.files, out)[0]
    assert rec["output_ref"].startswith("data:image/png;base64,<") and rec["output_ref"].endswith("base64 chars>")
    job_text = JobStore().path(gen.job_id).read_text()
    assert len(job_text) < 20_000 and "iVBOR" not in job_text, "no image bytes in the job record"


def test_download_that_drops_mid_file_is_retried(api_env: FakeServer, out: Path) -> None:
    api_env.drop_downloads = 1  # type: ignore[attr-defined]
    [gen] = imagine("a cat", out_dir=out)
    served = next(iter(api_env.generated_files.values()))[0]  # type: ignore[attr-defined]
    assert gen.files[0].read_bytes() == served
    assert len(api_env.requests_for("files")) == 2
    assert not list(out.glob(".*.part"))


def test_download_that_keeps_dropping_is_resumable(api_env: FakeServer, out: Path) -> None:
    api_env.drop_downloads = 99  # type: ignore[attr-defined]
    with pytest.raises(OutputDownloadError, match="jobs resume") as info:
        imagine("a cat", out_dir=out)
    assert len(api_env.requests_for("files")) == 3, "1 + max_retries attempts"
    assert [p.name for p in out.iterdir()] == [], "no half-written file is left behind"
    job = JobStore().get(info.value.job_id or "")
    assert job.status == "downloading" and job.active
    api_env.drop_downloads = 0  # type: ignore[attr-defined]
    files = JobRunner().resume(job)
    assert len(files) == 1 and files[0].is_file()
    assert_provenance(files, out)


def test_time_limit_leaves_the_job_running_for_resume(api_env: FakeServer, out: Path) -> None:
    api_env.prediction_seconds = 1.0
    with pytest.raises(GenerationTimeoutError, match="jobs resume") as info:
        imagine("a cat", out_dir=out, timeout=0.2)
    assert not any(r.path.endswith("/cancel") for r in api_env.requests), "a paid job is not thrown away"
    job = JobStore().get(info.value.job_id or "")
    assert job.status in {"starting", "processing"}
    files = JobRunner().resume(job)
    assert files and JobStore().get(job.id).status == "completed"


def interrupt_when_processing(job: Job) -> None:
    if job.status == "processing":
        raise KeyboardInterrupt


def test_ctrl_c_cancels_at_the_provider_after_asking(api_env: FakeServer, out: Path) -> None:
    api_env.prediction_seconds = 5
    asked: list[str] = []

    def confirm(job: Job) -> bool:
        asked.append(job.id)
        return True

    with pytest.raises(GenerationInterrupted) as info:
        imagine("a cat", out_dir=out, on_update=interrupt_when_processing, confirm_cancel=confirm)
    assert info.value.canceled and asked == [info.value.job_id]
    pred = next(iter(api_env.replicate_predictions.values()))  # type: ignore[attr-defined]
    assert pred.status == "canceled"
    assert JobStore().get(asked[0]).status == "canceled"


def test_ctrl_c_declined_keeps_the_job_and_resume_collects_it(api_env: FakeServer, out: Path) -> None:
    api_env.prediction_seconds = 0.5
    with pytest.raises(GenerationInterrupted, match="keeps running") as info:
        imagine("a cat", out_dir=out, on_update=interrupt_when_processing, confirm_cancel=lambda job: False)
    assert not info.value.canceled
    assert not any(r.path.endswith("/cancel") for r in api_env.requests)
    [job] = JobStore().list(active_only=True)
    assert JobRunner().resume(job)[0].is_file()


def test_video_from_the_generated_image_with_provenance(api_env: FakeServer, out: Path) -> None:
    image, video = imagine("today's headlines", headlines=["Flood waters rise", "Markets rally"], style="cyberpunk",
                           video=True, out_dir=out)
    create = api_env.requests_for("replicate", "/v1/models/kwaivgi/kling-v2.1/predictions")[0].json["input"]
    assert create["start_image"].startswith("data:image/webp;base64,"), "small start images travel as data URLs"
    assert create["duration"] == 5 and "Camera: slow dolly forward" in create["prompt"]
    assert video.files[0].suffix == ".mp4" and video.files[0].read_bytes()[4:8] == b"ftyp"
    rec = assert_provenance(video.files, out)[0]
    assert rec["parent"]["job_id"] == image.job_id and rec["source"]["headlines"] == ["Flood waters rise",
                                                                                      "Markets rally"]
    assert len(read_index(out)) == 2


def test_large_start_images_go_through_the_files_api(api_env: FakeServer, out: Path, tmp_path: Path) -> None:
    import numpy as np

    photo = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(photo)
    assert photo.stat().st_size > 256 * 1024
    [video] = imagine("waves", video_from=photo, out_dir=out)
    upload = api_env.requests_for("replicate", "/v1/files")
    assert len(upload) == 1
    start = api_env.requests_for("replicate", "/v1/models/kwaivgi/kling-v2.1/predictions")[0].json["input"]
    assert start["start_image"].startswith(api_env.url + "/delivery/file_")
    assert assert_provenance(video.files, out)[0]["parent"]["user_image"] is True


def test_openai_videos_opt_in_without_leaking_the_deprecation(api_env: FakeServer, out: Path) -> None:
    # pytest runs with filterwarnings=error: a DeprecationWarning from the videos API would fail this test
    image, video = imagine("a kite", image_model="openai/gpt-image-1-mini", video=True,
                           video_model="openai/sora-2", seconds=8, out_dir=out,
                           generator_kwargs={"poll_interval": 0.02})
    create = api_env.requests_for("openai", "/v1/videos")[0]
    assert create.headers["content-type"].startswith("multipart/form-data")
    video_job = api_env.openai_videos  # type: ignore[attr-defined]
    fake = next(iter(video_job.values()))
    assert fake.seconds == "8" and fake.reference and fake.reference[0] == image.files[0].name
    assert video.files[0].suffix == ".mp4" and video.estimated_cost_usd == pytest.approx(0.8)
    assert_provenance(video.files, out)


def test_openai_videos_gone_is_a_clear_error(api_env: FakeServer, out: Path) -> None:
    with pytest.raises(ServiceGoneError, match=r"no longer available.*replicate"):
        imagine("a kite", video_from=None, video=True, image_model="openai/gpt-image-2",
                video_model="openai/sora-2-gone", out_dir=out, generator_kwargs={"poll_interval": 0.02})


def test_budget_is_checked_before_anything_is_submitted(api_env: FakeServer, out: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_BUDGET_USD", "0.1")
    reload_config()
    plan = plan_imagine("a cat", video=True)
    assert plan.estimated_cost_usd == pytest.approx(0.003 + 0.25)
    with pytest.raises(BudgetExceededError) as info:
        imagine("a cat", video=True, out_dir=out)
    assert info.value.estimated_usd == pytest.approx(0.253)
    assert not api_env.requests and not JobStore().list()
    with pytest.raises(ConfigurationError, match=r"price of replicate/someone/unknown-model is unknown"):
        imagine("a cat", image_model="replicate/someone/unknown-model", out_dir=out)
    imagine("a cat", out_dir=out)  # $0.003 fits


def test_model_table_errors(api_env: FakeServer, out: Path) -> None:
    with pytest.raises(UnknownModelError, match="shut down on 2026-10-23"):
        plan_imagine("a cat", image_model="openai/gpt-image-1")
    with pytest.raises(UnknownModelError, match="retired"):
        plan_imagine("a cat", image_model="openai/dall-e-3")
    with pytest.raises(ModelCapabilityError, match="makes images, not videos"):
        plan_imagine("a cat", video=True, video_model=FLUX)
    with pytest.raises(ValueError, match="aspect ratios"):
        plan_imagine("a cat", aspect_ratio="7:3")
    with pytest.raises(ValueError, match="5, 10 seconds"):
        plan_imagine("a cat", video=True, seconds=7)
    assert not api_env.requests


def test_counts_above_the_model_maximum_become_several_jobs(api_env: FakeServer, out: Path) -> None:
    plan = plan_imagine("a cat", n=6, seed=10)
    assert [j.inputs["num_outputs"] for j in plan.jobs] == [4, 2]
    assert [j.inputs["seed"] for j in plan.jobs] == [10, 11]
    ideogram = plan_imagine("a cat", n=2, image_model="replicate/ideogram-ai/ideogram-v3-turbo")
    assert len(ideogram.jobs) == 2 and ideogram.estimated_cost_usd == pytest.approx(0.06)


def test_no_key_ever_reaches_a_written_file(api_env: FakeServer, out: Path) -> None:
    imagine("a cat", image_model="openai/gpt-image-2", video=True, out_dir=out)
    api_env.script(model="black-forest-labs/*", fault="fail", error=f"bad token {REPLICATE_KEY}")
    with pytest.raises(GenerationError) as info:
        imagine("a dog", out_dir=out)
    assert REPLICATE_KEY not in str(info.value)
    data_dir = JobStore().root.parent
    text = all_written_text(out, data_dir)
    assert "provenance" in text and "a dog" in text
    for secret in (OPENAI_KEY, REPLICATE_KEY):
        assert secret not in text


def test_png_chunk_is_inserted_without_touching_the_pixels() -> None:
    from vision.bridge.provenance import embed_png

    bio = io.BytesIO()
    Image.new("RGB", (5, 4), (10, 20, 30)).save(bio, format="PNG")
    out = embed_png(bio.getvalue(), json.dumps({"caption": "café ☕"}))
    with Image.open(io.BytesIO(out)) as img:
        img.load()
        assert img.getpixel((0, 0)) == (10, 20, 30)
        assert json.loads(img.text["vision-provenance"]) == {"caption": "café ☕"}

"""From file to request payload: time, billed image tokens, peak memory; and `vision --help` start-up.

Every figure is printed beside a baseline measured in the same run:

* payload time: our path (reduced JPEG decoding, resize, JPEG q85, base64) against the naive one
  (full decode, full-size PNG, base64), on one core;
* billed image tokens per provider rule: our ``detail=auto`` plan against the naive request (the
  full image with ``detail: high``, which the provider bills at its own maximum);
* peak memory of planning a request for the 12 MP photo, in a fresh process, against the same
  process doing the naive encode;
* wall time of ``vision --help`` against ``python -c pass``.

Targets (issue #2): payload <= 80 ms for the 12 MP photo on one core; >= 40% fewer billed tokens
than naive on average over the rules and never more for any; planning peak < 300 MB;
``vision --help`` < 0.4 s.

Run: python benchmarks/encode_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RULE_MODELS = {  # one model per provider rule in the model table
    "openai-tile": ("openai", "gpt-4.1"),
    "openai-tile (4o-mini)": ("openai", "gpt-4o-mini"),
    "openai-patch": ("openai", "gpt-4.1-mini"),
    "anthropic": ("anthropic", "claude-sonnet-4-5"),
    "gemini": ("gemini", "gemini-2.5-flash"),
    "qwen": ("ollama", "qwen2.5vl:7b"),
    "fixed (llava)": ("ollama", "llava"),
    "unknown": ("vllm", "some-new-model"),
}


def one_core() -> None:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    import cv2

    cv2.setNumThreads(1)


def make_photo(path: Path, size: tuple[int, int], seed: int) -> None:
    """A phone-like photo: smooth light, texture, noise and some printed text."""
    w, h = size
    rng = np.random.default_rng(seed)
    import cv2

    layers = np.zeros((h, w, 3), np.float32)
    for scale in (8, 32, 128):
        small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
        layers += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * (scale / 168)
    img = np.clip(layers / layers.max() * 220 + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=max(24, h // 30))
    for i in range(8):
        draw.text((w // 10, h // 10 + i * h // 12), f"Line {i}: small print 0123456789", font=font, fill="black")
    pil.save(path, quality=92)


def time_ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm caches and lazy imports
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def ours_payload(path: Path, model) -> str:  # type: ignore[no-untyped-def]
    from vision.encode import _CACHE, encode_image
    from vision.frame import Frame

    _CACHE.clear()  # measure the work, not the memo
    frame = Frame.from_path(path, max_side=model.source_side("auto"))
    return encode_image(frame, model.rule, detail="auto").data_url


def naive_payload(path: Path) -> str:
    img = Image.open(path)
    img.load()
    bio = io.BytesIO()
    img.save(bio, format="PNG")
    return "data:image/png;base64," + base64.b64encode(bio.getvalue()).decode()


def peak_rss_mb(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


# VmHWM (peak resident set) is reset by exec, unlike ru_maxrss, which a child inherits from its parent
RSS_SNIPPET = """
import re, sys
sys.path.insert(0, {root!r})
{body}
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke run)")
    args = parser.parse_args()
    repeat = 3 if args.quick else 15
    os.environ.setdefault("VISION_HISTORY", "0")
    one_core()

    from vision.providers import get_model

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "phone_4032x3024.jpg"
        frame_1080 = Path(tmp) / "frame_1920x1080.jpg"
        make_photo(photo, (4032, 3024), 1)
        make_photo(frame_1080, (1920, 1080), 2)

        print(f"inputs: {photo.name} {photo.stat().st_size / 1e6:.1f} MB, "
              f"{frame_1080.name} {frame_1080.stat().st_size / 1e6:.1f} MB; one core; median of {repeat}")
        print()
        print("1. file -> request payload (ms)")
        print(f"   {'image':<24}{'rule':<24}{'ours':>8}{'naive':>9}{'speed-up':>10}")
        for path in (photo, frame_1080):
            naive_ms = time_ms(lambda p=path: naive_payload(p), max(2, repeat // 3))
            for rule_name in ("openai-tile", "openai-patch", "anthropic", "gemini"):
                m = get_model("/".join(RULE_MODELS[rule_name]))
                ours_ms = time_ms(lambda p=path, m=m: ours_payload(p, m), repeat)
                print(f"   {path.name:<24}{rule_name:<24}{ours_ms:8.1f}{naive_ms:9.1f}{naive_ms / ours_ms:9.1f}x")
                results[f"payload_ms/{path.name}/{rule_name}"] = round(ours_ms, 1)
            results[f"payload_ms/{path.name}/naive"] = round(naive_ms, 1)
        worst_12mp = max(v for k, v in results.items() if k.startswith(f"payload_ms/{photo.name}/")
                         and not k.endswith("naive"))  # type: ignore[type-var]
        print(f"   target: 12 MP photo ready in <= 80 ms: worst rule {worst_12mp:.1f} ms "
              f"-> {'MET' if worst_12mp <= 80 else 'NOT MET'}")

        print()
        print("2. billed image tokens: ours (detail=auto) vs naive (full image, detail=high)")
        print(f"   {'rule':<24}{'image':<24}{'sent':>11}{'ours':>8}{'naive':>8}{'saved':>8}")
        savings = []
        never_more = True
        from vision.frame import Frame
        from vision.providers import ImagePart

        for path in (photo, frame_1080):
            size = Image.open(path).size
            for rule_name, (prov, name) in RULE_MODELS.items():
                m = get_model(f"{prov}/{name}")
                enc = m.encode(ImagePart(Frame.from_path(path, max_side=m.source_side("auto")), "auto"))
                naive_tokens = m.rule.tokens(*size, "high")
                saved = 1 - enc.tokens / naive_tokens
                savings.append(saved)
                never_more &= enc.tokens <= naive_tokens
                print(f"   {rule_name:<24}{path.name:<24}{enc.width:>5}x{enc.height:<5}{enc.tokens:8d}"
                      f"{naive_tokens:8d}{saved:8.0%}")
        mean_saved = sum(savings) / len(savings)
        results["tokens_saved_mean"] = round(mean_saved, 3)
        print(f"   mean saving {mean_saved:.0%} over {len(savings)} rule x image pairs; never more than naive: "
              f"{never_more} -> target (>= 40%, never more) {'MET' if mean_saved >= 0.4 and never_more else 'NOT MET'}")

        print()
        print("3. peak memory planning a request for the 12 MP photo (fresh process, MB)")
        base = RSS_SNIPPET.format(root=str(ROOT), body="import vision.providers, vision.encode, cv2, PIL.Image")
        ours = RSS_SNIPPET.format(root=str(ROOT), body=(
            "import os; os.environ['VISION_HISTORY']='0'\n"
            "from vision.providers import get_model\nfrom vision.chat import Conversation\n"
            f"c = Conversation({str(photo)!r}, model='openai/gpt-4.1-mini')\nc.plan('what is this?')"))
        naive = RSS_SNIPPET.format(root=str(ROOT), body=(
            "import vision.providers, vision.encode, cv2, PIL.Image\n"
            "import sys; sys.path.insert(0, 'benchmarks')\nfrom encode_bench import naive_payload\n"
            f"from pathlib import Path\nnaive_payload(Path({str(photo)!r}))"))
        rss_base, rss_ours, rss_naive = peak_rss_mb(base), peak_rss_mb(ours), peak_rss_mb(naive)
        results["plan_peak_mb"] = round(rss_ours, 1)
        print(f"   imports only {rss_base:.0f}  |  ours {rss_ours:.0f} (+{rss_ours - rss_base:.0f})  |  "
              f"naive PNG {rss_naive:.0f} (+{rss_naive - rss_base:.0f})")
        print(f"   target: < 300 MB -> {'MET' if rss_ours < 300 else 'NOT MET'}")

    print()
    print("4. start-up (s, median of 5)")
    help_s = statistics.median(_wall([sys.executable, "-m", "vision", "--help"]) for _ in range(5))
    bare_s = statistics.median(_wall([sys.executable, "-c", "pass"]) for _ in range(5))
    results["help_s"] = round(help_s, 3)
    print(f"   vision --help {help_s:.3f}  |  python -c pass {bare_s:.3f}  -> target < 0.4 s "
          f"{'MET' if help_s < 0.4 else 'NOT MET'}")
    print()
    print("json:", json.dumps(results))
    return 0


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())

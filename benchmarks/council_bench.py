"""Council wall time per stage against the sum and the maximum of its members' latencies.

Runs against ``vision.testing`` (the fake OpenAI server, in this process) with members that take
0.2, 0.4, 0.6, 0.8 and 1.0 s to answer (``slow-<seconds>`` in their model names). The baseline is
measured in the same run: every member is asked alone, one after another, through the same async
path the council uses (``Conversation.aask``), which gives each member's latency, their sum (a
council that asks in turn) and their maximum (the best a concurrent council can do). Then full
council rounds are timed stage by stage; stage 2 has every member review, stage 3 is the chair alone.

Target (issue #6): each stage within 1.15 x its slowest member.

Run: python benchmarks/council_bench.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DELAYS = (0.2, 0.4, 0.6, 0.8, 1.0)
TARGET = 1.15
IMAGE = ROOT / "assets" / "book_cover.png"
QUESTION = "What is this?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="council rounds to time (default 3; the median counts)")
    parser.add_argument("--quick", action="store_true", help="one round (CI smoke run)")
    args = parser.parse_args()
    rounds = 1 if args.quick else max(1, args.rounds)

    from vision.testing import FakeServer

    with FakeServer() as server:
        os.environ.update(OPENAI_BASE_URL=server.openai_base_url, OPENAI_API_KEY="bench", VISION_HISTORY="0",
                          VISION_MAX_RETRIES="0", VISION_TIMEOUT="30")
        from vision.chat import Conversation
        from vision.config import reload_config
        from vision.council import Council, run_sync

        reload_config()
        members = [f"openai/gpt-4.1-mini-m{i}-slow-{d:g}" for i, d in enumerate(DELAYS, 1)]
        chair = members[-1]  # the slowest member chairs: stage 3's slowest is 1.0 s too

        run_sync(Conversation(IMAGE, model="openai/gpt-4.1-mini-warmup", history=False).aask("warm up"))

        solo: dict[str, float] = {}
        for name in members:  # the baseline: each member alone, one after another
            conv = Conversation(IMAGE, model=name, history=False)
            start = time.perf_counter()
            run_sync(conv.aask(QUESTION))
            solo[name] = time.perf_counter() - start

        walls: dict[str, list[float]] = {"answers": [], "ranking": [], "synthesis": []}
        for _ in range(rounds):
            council = Council(IMAGE, members, chair=chair, seed=1, history=False)
            result = council.ask(QUESTION)
            assert all(c.ok for c in result.calls), [c.error for c in result.calls if not c.ok]
            for t in result.timings:
                walls[t.stage].append(t.wall_s)

    stage_members = {"answers": members, "ranking": members, "synthesis": [chair]}
    print(f"council of {len(members)} members answering in {', '.join(f'{d:g}' for d in DELAYS)} s (fake server), "
          f"{rounds} round(s), median wall time per stage")
    print()
    print("member latencies alone (baseline, same run):")
    for name in members:
        print(f"  {name:<34} {solo[name]:.3f} s")
    print()
    header = f"{'stage':<10} {'calls':>5} {'sum':>8} {'max':>8} {'council':>8} {'/ max':>7} {'/ sum':>7}  target"
    print(header)
    print("-" * len(header))
    met_all = True
    for stage, names in stage_members.items():
        lat = [solo[n] for n in names]
        wall = statistics.median(walls[stage])
        ratio = wall / max(lat)
        met = ratio <= TARGET
        met_all &= met
        print(f"{stage:<10} {len(names):>5} {sum(lat):>7.3f}s {max(lat):>7.3f}s {wall:>7.3f}s {ratio:>7.3f} "
              f"{wall / sum(lat):>7.3f}  {'met' if met else 'NOT met'} (<= {TARGET} x max)")
    print()
    print(f"target: each stage within {TARGET} x its slowest member: {'met' if met_all else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

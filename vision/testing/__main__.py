"""``python -m vision.testing [--port N]``: serve the fake OpenAI and Replicate APIs until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .server import FakeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--require-key", default=None, help="accept only this API key (default: any)")
    parser.add_argument("--prediction-seconds", type=float, default=0.05,
                        help="how long a Replicate prediction runs (default 0.05)")
    args = parser.parse_args(argv)
    try:
        server = FakeServer(host=args.host, port=args.port, require_key=args.require_key,
                            prediction_seconds=args.prediction_seconds)
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    sys.stdout.write(f"OPENAI_BASE_URL={server.openai_base_url}\nREPLICATE_BASE_URL={server.replicate_base_url}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

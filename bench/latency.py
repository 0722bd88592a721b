"""Bench 3: overlapped latency. 50 ms added to every AWS call; (calls x 50 ms) / (extra wall time), goal >= 4.

The sandbox's sample environment on the latency middleware (tests/wsgi_backend.py). Each mode runs alternately
with 0 ms and 50 ms added; extra wall time = median(50 ms runs) - median(0 ms runs), where wall time is the
report's duration_s (plugin start to report: collection, discovery and every check; no interpreter start-up).
Modes: the default on a first run (no hints), the default with the hints recorded by the previous run, and one
evaluation at a time. Also printed: the average number of calls in flight while any call is (the same goal).
Usage: python bench/latency.py [repetitions] [latency_ms]   (default 5, 50)
"""

from __future__ import annotations

import json
import sys

from common import MotoMiddleware, concurrency, median, run_pytest, seed_environment, workdir, write_config


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    latency = (float(sys.argv[2]) if len(sys.argv) > 2 else 50.0) / 1000
    with MotoMiddleware() as server:
        d = workdir("latency")
        write_config(d, seed_environment(server.endpoint, d / "state", subnets=4, groups=2))
        modes = {"first run (default, no hints: -p no:cacheprovider)": ["-p", "no:cacheprovider"],
                 "default, with the previous run's hints": [],
                 "--mlbatch-concurrency 1 (one at a time)": ["--mlbatch-concurrency", "1"]}
        for mode, extra in modes.items():
            args = ["--mlbatch", "-q", "--mlbatch-json", "r.json", *extra]
            run_pytest(d, args, server.endpoint)  # warm moto's lazily built backends
            walls: dict[float, list[float]] = {0.0: [], latency: []}
            calls: list[int] = []
            overlap: list[float] = []
            for i in range(reps):
                for lat in ((0.0, latency) if i % 2 == 0 else (latency, 0.0)):
                    server.latency = lat
                    server.clear()
                    run_pytest(d, args, server.endpoint)
                    # the preflight's own duration (plugin start to report), without interpreter start-up noise
                    walls[lat].append(json.loads((d / "r.json").read_text())["duration_s"])
                    if lat:
                        calls.append(sum(server.counts().values()))
                        overlap.append(concurrency(server.calls))
            n = int(median([float(c) for c in calls]))
            extra_wall = median(walls[latency]) - median(walls[0.0])
            ratio = n * latency / extra_wall if extra_wall > 0 else float("inf")
            print(f"{mode}: {n} calls; preflight {median(walls[0.0]):.2f} s at 0 ms, {median(walls[latency]):.2f} s at "
                  f"{latency * 1000:.0f} ms; extra {extra_wall:.2f} s; (calls x latency) / extra = {ratio:.1f}; "
                  f"calls in flight while busy {median(overlap):.1f}, max {server.max_in_flight}")
        print("goal: >= 4 for the default mode, on a first run and with hints")


if __name__ == "__main__":
    main()

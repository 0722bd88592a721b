"""Bench 5: the first run's critical path in sequential AWS round trips (goal <= 5 for the whole catalog).

The sandbox's sample environment on the latency middleware (tests/wsgi_backend.py), 1 s added to every call, a
first run (`-p no:cacheprovider`: no hints from a previous run). Round trips on the critical path = the longest
chain of calls in which each call started after the one before it had answered (wsgi_backend.round_trips); the
chain is printed so a regression names the reads that wait for one another. Also: calls per preflight, and the
average number of calls in flight while any is.
Usage: python bench/critical_path.py [subnets] [latency_ms]   (default 1 and 40 subnets, 1000 ms)

Why 1 s: a chain counts a call as waiting for another when it started after the other answered. With 50 ms added, the
plugin's own CPU time between calls (parsing answers, evaluating checks; one GIL, two cores here) is of the same
order, so calls that need nothing from each other still come out one after the other: 9 "round trips" measured that
way on this machine, where 1 s of latency shows the 4 that the reads' dependencies really impose.
"""

from __future__ import annotations

import sys

from common import MotoMiddleware, concurrency, round_trips, run_pytest, seed_environment, workdir, write_config

GOAL = 5


def main() -> None:
    sizes = [int(sys.argv[1])] if len(sys.argv) > 1 else [1, 40]
    latency = (float(sys.argv[2]) if len(sys.argv) > 2 else 1000.0) / 1000
    for subnets in sizes:
        with MotoMiddleware() as server:
            server.reset()  # moto's state is the process's: the previous size's environment goes
            d = workdir("critical-path")
            write_config(d, seed_environment(server.endpoint, d / "state", subnets=subnets, groups=2))
            args = ["--mlbatch", "-q", "-p", "no:cacheprovider"]
            run_pytest(d, args, server.endpoint)  # warm moto's lazily built backends
            server.latency = latency
            server.clear()
            run_pytest(d, args, server.endpoint)
            calls = [c for c in server.calls if c.from_plugin]
            depth, chain = round_trips(calls)
            print(f"{subnets} subnet(s): {len(calls)} calls; critical path {depth} round trips (goal <= {GOAL}); "
                  f"calls in flight while busy {concurrency(calls):.2f}")
            print("  chain: " + " -> ".join(c.operation for c in chain))


if __name__ == "__main__":
    main()

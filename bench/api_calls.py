"""Bench 2: AWS calls of a full preflight with 1, 10 and 100 subnets and security groups (goal: equal counts).

The sandbox's sample environment (every area has something to check) with N subnets and N security groups in the
config, on a counting moto server. Prints the calls per operation for each N.
Usage: python bench/api_calls.py [N ...]   (default 1 10 100)
"""

from __future__ import annotations

import sys
from collections import Counter

from common import MotoMiddleware, run_pytest, seed_environment, workdir, write_config


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1, 10, 100]
    counts: dict[int, Counter[str]] = {}
    items: dict[int, int] = {}
    with MotoMiddleware() as server:
        warm = workdir("calls-warm")  # moto builds each service's backend on its first request: not measured
        write_config(warm, seed_environment(server.endpoint, warm / "state"))
        run_pytest(warm, ["--mlbatch", "-q"], server.endpoint)
        for n in sizes:
            server.reset()
            d = workdir(f"calls{n}")
            write_config(d, seed_environment(server.endpoint, d / "state", subnets=n, groups=n))
            server.clear()
            _, proc = run_pytest(d, ["--mlbatch", "-q"], server.endpoint)
            counts[n] = server.counts()
            last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
            items[n] = sum(int(w) for w, nxt in zip(last.split(), last.split()[1:], strict=False)
                           if w.isdigit() and nxt.rstrip(",") in ("passed", "failed", "skipped", "error",
                                                                   "errors", "xfailed"))
            print(f"N={n}: {sum(counts[n].values())} calls, {items[n]} items  ({last.strip('= ')})")
    ops = sorted(set().union(*counts.values()))
    width = max(len(o) for o in ops) if ops else 10
    print(f"\n{'operation':<{width}}  " + "  ".join(f"N={n:>4}" for n in sizes))
    for op in ops:
        print(f"{op:<{width}}  " + "  ".join(f"{counts[n].get(op, 0):>6}" for n in sizes))
    print(f"{'total':<{width}}  " + "  ".join(f"{sum(counts[n].values()):>6}" for n in sizes))
    equal = all(counts[n] == counts[sizes[0]] for n in sizes)
    print(f"\ncalls equal for every N: {'yes' if equal else 'NO'}  (goal: yes)")


if __name__ == "__main__":
    main()

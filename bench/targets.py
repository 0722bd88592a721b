"""Bench 4: many targets. One run over 20 regions, serial vs `-n 2` (pytest-xdist, loadgroup: one worker per target).

The sandbox's sample environment is seeded in us-east-1; the other 19 regions have none of it (their checks fail
or skip, but make the same reads). 50 ms is added to every AWS call by default, as over a real network. Prints wall
times, calls per run (each (account, region) query once per run in both modes) and the speed-up.
Usage: python bench/targets.py [regions] [latency_ms] [workers]   (default 20, 50, 2)
"""

from __future__ import annotations

import json
import sys

from common import MotoMiddleware, run_pytest, seed_environment, workdir, write_config

REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1",
           "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
           "ap-southeast-2", "ca-central-1", "sa-east-1", "eu-south-1", "af-south-1", "me-south-1"]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    latency = (float(sys.argv[2]) if len(sys.argv) > 2 else 50.0) / 1000
    workers = sys.argv[3] if len(sys.argv) > 3 else "2"
    with MotoMiddleware() as server:
        d = workdir("targets")
        raw = seed_environment(server.endpoint, d / "state")
        raw.pop("region", None)
        raw["targets"] = [{"region": r} for r in REGIONS[:n]]
        write_config(d, raw)
        base = ["--mlbatch", "-q", "-p", "no:cacheprovider", "--mlbatch-json", "r.json"]
        run_pytest(d, base, server.endpoint)  # warm moto's per-region backends
        server.latency = latency
        results = {}
        for name, extra in (("serial", []), (f"-n {workers}", ["-n", workers])):
            server.clear()
            wall, _ = run_pytest(d, [*base, *extra], server.endpoint)
            report = json.loads((d / "r.json").read_text())
            calls = server.counts()
            results[name] = (wall, report, calls)
            total, targets = sum(calls.values()), len(report["targets"])
            print(f"{name}: {wall:6.1f} s wall, {len(report['results'])} results over {targets} targets, {total} AWS "
                  f"calls ({total / targets:.1f} per target), summary {report['summary']}")
        (s_wall, s_rep, s_calls), (p_wall, p_rep, p_calls) = results.values()
        key = ("target", "check_id", "resource", "outcome", "message")
        same = sorted(tuple(str(r[k]) for k in key) for r in s_rep["results"]) == \
            sorted(tuple(str(r[k]) for k in key) for r in p_rep["results"])
        print(f"speed-up serial / -n {workers}: {s_wall / p_wall:.2f}x; same results: {'yes' if same else 'NO'}; "
              f"same calls: {'yes' if s_calls == p_calls else 'NO'}")


if __name__ == "__main__":
    main()

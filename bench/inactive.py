"""Bench 1: the plugin installed but inactive. `pytest --co` on 2,000 plain tests, with vs `-p no:mlbatch`.

Goal: median ratio <= 1.02. Runs alternate (A B A B ...) so drift in machine load hits both sides alike.
Usage: python bench/inactive.py [repetitions]   (default 21)
"""

from __future__ import annotations

import sys

from common import median, run_pytest, run_pytest_cpu, workdir


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    d = workdir("inactive")
    for f in range(40):
        body = "\n".join(f"def test_{f}_{i}():\n    assert {i} == {i}\n" for i in range(50))
        (d / f"test_plain_{f:02d}.py").write_text(body)
    (d / "pytest.ini").write_text("[pytest]\n")
    base = ["--co", "-q"]
    _, proc = run_pytest(d, base)
    assert "2000 tests collected" in proc.stdout, proc.stdout[-500:]
    for _ in range(2):  # warm the file cache
        run_pytest(d, base)
        run_pytest(d, [*base, "-p", "no:mlbatch"])
    runs: dict[str, tuple[list[float], list[float]]] = {"on": ([], []), "off": ([], [])}
    for i in range(reps):
        pair = [("on", base), ("off", [*base, "-p", "no:mlbatch"])]
        for name, args in (pair if i % 2 == 0 else pair[::-1]):
            wall, cpu, _ = run_pytest_cpu(d, args)
            runs[name][0].append(wall)
            runs[name][1].append(cpu)
    print(f"pytest --co -q on 2000 plain tests, {reps} alternating runs each (medians; min in brackets)")
    for label, index in (("wall", 0), ("cpu ", 1)):
        on, off = runs["on"][index], runs["off"][index]
        print(f"  {label}: installed {median(on) * 1000:6.0f} ms [{min(on) * 1000:.0f}]   -p no:mlbatch "
              f"{median(off) * 1000:6.0f} ms [{min(off) * 1000:.0f}]   ratio {median(on) / median(off):.3f} "
              f"[{min(on) / min(off):.3f}]  (goal <= 1.02)")


if __name__ == "__main__":
    main()

"""The benchmark at tiny scale, so it cannot rot: it runs, exits 0 and writes every figure as a number.

Timing is never asserted here; the figures are for people (docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.report import is_number, lookup, required_paths

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # a generous bound: on a loaded machine (two suites at once) the quick run took over 3 minutes
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"
    results = json.loads(out.read_text())
    missing = [path for path in required_paths() if not is_number(lookup(results, path))]
    assert not missing, f"figures without a number: {missing}\n{run.stdout[-3000:]}"
    assert results["targets"], "no target was evaluated"

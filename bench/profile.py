"""py-spy around a figure, and a summary of where the time went: `python -m bench.profile FILE...`.

py-spy is optional (`pip install py-spy` into the venv; it is not a project dependency). It samples the
process from outside with `--nonblocking`, so the process is never paused and its figures barely move.
Output is py-spy's "raw" collapsed stacks: `frame;frame;frame count` per line.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.procs import Proc


@contextlib.contextmanager
def recording(procs: list[Proc], out_dir: Path | None, label: str) -> Iterator[list[Path]]:
    """Record each process while the block runs; yields the files that will hold the stacks."""
    spy = shutil.which("py-spy")
    if out_dir is None or spy is None:
        yield []
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    running: list[subprocess.Popen[bytes]] = []
    files: list[Path] = []
    for proc in procs:
        path = out_dir / f"{label}-{proc.name}.txt"
        args = [spy, "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "250", "--nonblocking"]
        args += ["--output", str(path)]
        running.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        files.append(path)
    try:
        yield files
    finally:
        for spy_proc in running:
            # SIGINT makes py-spy stop and write its file; it is killed if it does not within 20 s.
            spy_proc.send_signal(signal.SIGINT)
            try:
                spy_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
                spy_proc.wait()


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like `function (path/to/module.py:123)`; drop the line for grouping.
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarise(path: Path, top: int = 20) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        # Thread/process roots and the idle selector wait are not work.
        if not frames or "select (selectors.py)" in frames[-1]:
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} busy samples", "  self time:"]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in self_time.most_common(top)]
    lines.append("  inclusive (project and library entry points):")
    shown = [(name, n) for name, n in inclusive.most_common() if not name.startswith(("_run ", "run ", "<module>"))]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in shown[:top]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="summarise py-spy raw profiles")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    for path in args.files:
        print(summarise(path, args.top))


if __name__ == "__main__":
    main()

"""Where a py-spy profile's samples go: the frames that hold them, own and inclusive.

    .venv/bin/python bench/profile_summary.py PROFILE.txt [--top 15]

PROFILE.txt is py-spy's ``--format raw`` output (collapsed stacks, one per line with its
sample count), as ``bench_triage.py --profile`` and ``bench_rest.py --profile`` write it.
Inclusive shares count a sample once per function on its stack; only the operator's, Kopf's,
the Kubernetes client's and pydantic's functions are listed there.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

SHOWN = ("incident_operator", "kopf", "kubernetes", "pydantic")


def function(frame: str) -> str:
    """``name (path:line)`` without the line: one key per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarize(lines: list[str]) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    total, own, inclusive = 0, collections.Counter[str](), collections.Counter[str]()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples, frames = int(count), stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for key in {function(f) for f in frames}:
            inclusive[key] += samples
    return total, own, inclusive


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    total, own, inclusive = summarize(Path(args.profile).read_text().splitlines())
    print(f"{total} samples")
    for frame, samples in own.most_common(args.top):
        print(f"{100 * samples / total:5.1f} % own        {frame}")
    shown = [(k, v) for k, v in inclusive.most_common() if any(s in k for s in SHOWN)]
    for key, samples in shown[: args.top * 2]:
        print(f"{100 * samples / total:5.1f} % inclusive  {key}")


if __name__ == "__main__":
    main()

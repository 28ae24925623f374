"""Summarise a py-spy ``--format raw`` (collapsed stacks) file: the top functions by self and total time.

``python -m bench.profile_top FILE [--top 25] [--filter atoll]``: each line of the file is
``frame;frame;...;frame count``; a function's *self* samples are those where it is the last frame, its
*total* samples those where it appears anywhere in the stack (counted once per stack).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def top(path: str, n: int = 25, needle: str = "") -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            c = int(count)
            samples += c
            frames = stack.split(";")
            own[frames[-1]] += c
            for fr in set(frames):
                total[fr] += c
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{100 * c / samples:6.1f}  {fn}" for fn, c in own.most_common(n)]
    lines += ["", "total %  function" + (f" (matching {needle!r})" if needle else "")]
    picked = [(fn, c) for fn, c in total.most_common() if needle in fn][:n]
    lines += [f"{100 * c / samples:7.1f}  {fn}" for fn, c in picked]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--filter", default="")
    a = ap.parse_args(argv)
    print(top(a.file, a.top, a.filter))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a turn's CPU goes: py-spy samples the server while wrk sends SMS turns.

Starts the same server and data as bench/turn_cost.py, records with py-spy (raw
collapsed stacks, plus a flame graph SVG) during a wrk run of distinct signed SMS turns,
and prints the functions with the largest inclusive share of the samples, filtered to
frames of this project and the libraries on the hot path.

    .venv/bin/python bench/profile_turns.py                 # SQLite
    BENCH_DB=postgresql BENCH_PATH=vapi .venv/bin/python bench/profile_turns.py   # or gather
    BENCH_TOP=40 BENCH_SECONDS=10 ...   (the SVG and stacks land in bench/out/)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _proc import serve
from turn_cost import (
    REQUESTS,
    SECONDS,
    TWILIO_TOKEN,
    VAPI_SECRET,
    Bench,
    Signer,
    database,
    gather_lines,
    seed,
    sms_lines,
    vapi_lines,
    voice_lines,
)

OUT = Path(__file__).resolve().parent / "out"
TOP = int(os.environ.get("BENCH_TOP", 30))


def summarise(stacks: Path) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        frames_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue  # a stack py-spy cut short
        count = int(count_text)
        frames = frames_text.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"{total} samples; inclusive share (top {TOP}):")
    for frame, count in inclusive.most_common(TOP * 3)[:TOP]:
        print(f"  {100 * count / total:5.1f}%  {frame[:150]}")
    print(f"self share (top {TOP}):")
    for frame, count in own.most_common(TOP):
        print(f"  {100 * count / total:5.1f}%  {frame[:150]}")


def main() -> None:
    kind = os.environ.get("BENCH_DB", "sqlite")
    path = os.environ.get("BENCH_PATH", "sms")
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        line = seed(url)
        env = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "VAPI_SECRET": VAPI_SECRET}
        with serve(url, env) as (base, pid):
            bench = Bench(base, pid, Path(tmp))
            signer = Signer(base)
            bench.run("warm-up", sms_lines(signer, line, 10**6, 300), "<Message>", seconds=2)
            raw = OUT / f"{kind}-{path}.txt"
            spy = subprocess.Popen(
                [
                    *(str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)),
                    *("--format", "raw", "--output", str(raw), "--rate", "250"),
                    *("--nonblocking", "--gil", "--duration", str(SECONDS)),
                ],
                stdout=subprocess.DEVNULL,
            )
            if path == "gather":  # every Gather turn belongs to a call answered first
                bench.run("calls", voice_lines(signer, line, REQUESTS), "<Say", seconds=SECONDS)
            lines, expect = {
                "sms": (sms_lines(signer, line, 0, REQUESTS), "<Message>"),
                "vapi": (vapi_lines(REQUESTS), '"results"'),
                "gather": (gather_lines(signer, line, REQUESTS), "<Say"),
            }[path]
            print(bench.run(path, lines, expect).line(None))
            spy.wait(timeout=SECONDS + 30)
    summarise(raw)


if __name__ == "__main__":
    main()

"""Progress of a sweep: tqdm bars on a terminal, plain lines otherwise, nothing when quiet.

Only counts, file names of the export and rates are shown: never a patient identifier.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """The interface the engine reports to (a silent default)."""

    def reading(self, files: int) -> None: ...
    def file(self, name: str) -> None: ...
    def lines(self, n: int) -> None: ...
    def evaluating(self, partitions: int) -> None: ...
    def partition_done(self, patients: int) -> None: ...
    def close(self) -> None: ...


class PlainProgress(Progress):
    """One line per file read and about every tenth of the partitions evaluated."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.read, self.done, self.total, self.patients = stream, 0, 0, 0, 0
        self.started = time.monotonic()

    def _say(self, text: str) -> None:
        print(f"sweep: {text}", file=self.stream, flush=True)

    def reading(self, files: int) -> None:
        self._say(f"reading {files} file(s)")

    def file(self, name: str) -> None:
        self._say(f"reading {name} ({self.read:,} resources so far)")

    def lines(self, n: int) -> None:
        self.read += n

    def evaluating(self, partitions: int) -> None:
        self.total = partitions
        self._say(f"read {self.read:,} lines in {time.monotonic() - self.started:.1f}s; "
                  f"evaluating {partitions} partition(s)")

    def partition_done(self, patients: int) -> None:
        self.done += 1
        self.patients += patients
        step = max(1, self.total // 10)
        if self.done % step == 0 or self.done == self.total:
            self._say(f"evaluated {self.done}/{self.total} partitions, {self.patients:,} patients")


class BarProgress(Progress):
    """tqdm bars: lines read (with the current file), then partitions evaluated (patients)."""

    def __init__(self, stream: TextIO) -> None:
        from tqdm import tqdm
        self._tqdm, self.stream = tqdm, stream
        self.bar: Any = None
        self.patients = 0

    def reading(self, files: int) -> None:
        self.bar = self._tqdm(desc="reading", unit=" res", unit_scale=True, file=self.stream,
                              dynamic_ncols=True)
        self.bar.set_postfix_str(f"{files} files")

    def file(self, name: str) -> None:
        self.bar.set_postfix_str(name)

    def lines(self, n: int) -> None:
        self.bar.update(n)

    def evaluating(self, partitions: int) -> None:
        self.bar.close()
        self.bar = self._tqdm(total=partitions, desc="evaluating", unit=" part", file=self.stream,
                              dynamic_ncols=True)

    def partition_done(self, patients: int) -> None:
        self.patients += patients
        self.bar.set_postfix_str(f"{self.patients:,} patients", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def for_stream(stream: TextIO | None = None, quiet: bool = False) -> Progress:
    """Bars when ``stream`` (stderr) is a terminal, plain lines otherwise, silence when quiet."""
    stream = stream or sys.stderr
    if quiet:
        return Progress()
    return BarProgress(stream) if stream.isatty() else PlainProgress(stream)


__all__ = ["BarProgress", "PlainProgress", "Progress", "for_stream"]

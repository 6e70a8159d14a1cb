"""Progress of long catalog work in the CLI: a bar on a terminal, plain lines otherwise, and the rate at the end."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class EmbedProgress:
    """Counts items embedded; `update(n)` is the catalog's progress callback."""

    def __init__(self, total: int | None, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self.started = time.perf_counter()
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    @property
    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.started, 1e-9)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=n)
            return
        of = f"/{self.total}" if self.total else ""
        print(f"embedded {self.done}{of} items ({self.rate:.0f} items/s)", file=self.stream, flush=True)

    def summary(self) -> str:
        elapsed = time.perf_counter() - self.started
        return f"{self.done} items embedded in {elapsed:.1f} s ({self.rate:.0f} items/s)"


@contextmanager
def embed_progress(total: int | None, stream: TextIO | None = None) -> Iterator[EmbedProgress]:
    """A bar on a TTY (rich), else a line per chunk; the summary line with the rate is printed at the end."""
    out = stream or sys.stderr
    progress = EmbedProgress(total, out)
    if out.isatty():
        with Progress(
            TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
        ) as bar:
            progress._bar = bar
            progress._task = bar.add_task("embed", total=total)
            yield progress
    else:
        yield progress
    if progress.done:
        print(progress.summary(), file=out, flush=True)

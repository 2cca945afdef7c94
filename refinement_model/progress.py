"""Progress on the command line: a tqdm bar driven by ``progress(done, total)`` callbacks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(description: str, *, unit: str = "step", enabled: bool = True) -> Iterator:
    """Yield a ``progress(done, total)`` callback drawing a bar on stderr (closed with the block).

    Long functions of this project report progress through such callbacks; this adapts them to
    the command line. With ``enabled=False`` it yields None, which those functions accept.
    """
    if not enabled:
        yield None
        return

    with tqdm(desc=description, unit=unit, disable=None, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        yield progress

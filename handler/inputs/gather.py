"""Many inputs read at once within one deadline: a bounded thread pool, late ones become per-item errors.

Each loader fetches and decodes one item (to a model-sized still or a multi-frame image), so at most
`concurrency` decoded images exist at a time. Loaders still running at the deadline are abandoned (their
own fetch deadline ends them soon after: callers give them at most the time left); those not started
are cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from handler.exceptions import InputError

T = TypeVar("T")


def gather(
    loaders: Sequence[Callable[[], T]], deadline: float, concurrency: int, late: Callable[[], InputError]
) -> list[T | InputError]:
    """Each loader's result, or its InputError, or `late()` when it had not finished by `deadline`
    (a `time.monotonic()` instant). Any other exception (an infrastructure fault) is raised."""
    if not loaders:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(loaders))), thread_name_prefix="gather")
    try:
        futures: list[Future[T]] = [pool.submit(loader) for loader in loaders]
        wait(futures, timeout=max(0.0, deadline - time.monotonic()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    results: list[T | InputError] = []
    for future in futures:
        if not future.done() or future.cancelled():
            results.append(late())
            continue
        error = future.exception()
        if error is None:
            results.append(future.result())
        elif isinstance(error, InputError):
            results.append(error)
        else:
            raise error
    return results

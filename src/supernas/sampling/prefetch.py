"""Run-ahead sampling: a background thread keeps a bounded queue of Archs ready, so the
accelerator never waits on the sampler (AttentiveNAS samples asynchronously on CPUs too).

One thread calls ``fn()`` over and over, so items come out in exactly the order direct calls
would give. Checkpointing needs care: when a checkpoint is taken, the sampler itself has already
run ahead by the queued items, so *its* state would skip them on resume. The prefetcher therefore
records the sampler's state right after producing each item, and :meth:`Prefetcher.state_dict`
returns the state recorded with the last item *consumed* -- the state that reproduces the first
unconsumed item. To resume: ``sampler.load_state_dict(saved)``, then build a new Prefetcher.

While a Prefetcher runs, only its thread may touch the sampler.
"""
from __future__ import annotations

import copy
import queue
import threading
from typing import Any, Callable, Generic, TypeVar

from ..errors import SupernasError

T = TypeVar("T")
_ITEM, _ERROR = "item", "error"


class Prefetcher(Generic[T]):
    """Iterator over ``fn()`` results, produced ahead by one thread into a queue of ``depth``.

    Args:
        fn: draws one item (e.g. ``sampler.sample`` or ``attentive.propose``).
        depth: items kept ready (the queue bound).
        state_fn: returns the sampler's checkpoint state (e.g. ``sampler.state_dict``); needed
            for :meth:`state_dict`. It is called once now and then after every item, by the thread.
    An exception in ``fn`` is re-raised by the next :meth:`get`, and by every one after it.
    """

    def __init__(self, fn: Callable[[], T], depth: int = 8, state_fn: Callable[[], Any] | None = None):
        if not callable(fn):
            raise SupernasError(f"Prefetcher needs a callable that draws one item, got {type(fn).__name__}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise SupernasError(f"depth (items drawn ahead) must be a positive integer, got {depth!r}")
        self._fn, self._state_fn = fn, state_fn
        self._state = state_fn() if state_fn else None  # before any item: the sampler's own state
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="supernas-prefetch", daemon=True)
        self._thread.start()

    @classmethod
    def from_sampler(cls, sampler: Any, depth: int = 8, method: str = "sample") -> "Prefetcher":
        """Prefetch ``sampler.<method>()`` with checkpoints through ``sampler.state_dict``."""
        return cls(getattr(sampler, method), depth, sampler.state_dict)

    # ------------------------------------------------------------------ producer
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._fn()
                state = self._state_fn() if self._state_fn else None
                if not self._put((_ITEM, item, state)):
                    return
        except BaseException as e:  # handed to the consumer, who decides
            self._put((_ERROR, e, None))

    def _put(self, entry) -> bool:
        while not self._stop.is_set():  # poll so that close() never leaves the thread blocked
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    # ------------------------------------------------------------------ consumer
    def get(self, timeout: float | None = None) -> T:
        """The next item, waiting for it if none is ready (queue.Empty after ``timeout`` s)."""
        if self._error is not None:
            raise self._error
        if self._stop.is_set():
            raise SupernasError("the prefetcher is closed; build a new one to draw more")
        tag, value, state = self._queue.get(timeout=timeout)
        if tag == _ERROR:
            self._error = value
            self._stop.set()
            raise value
        self._state = state
        return value

    def __iter__(self) -> "Prefetcher[T]":
        return self

    def __next__(self) -> T:
        return self.get()

    def state_dict(self) -> Any:
        """The sampler state that reproduces the first item not yet returned by :meth:`get`."""
        if self._state_fn is None:
            raise SupernasError("this Prefetcher was built without state_fn, so it cannot checkpoint; "
                                "build it with Prefetcher.from_sampler(sampler) or state_fn=sampler.state_dict")
        return copy.deepcopy(self._state)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the item it is drawing); queued items are dropped."""
        self._stop.set()
        while True:  # free a producer blocked on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout)

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

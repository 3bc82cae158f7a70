"""Latest-frame hand-off between a message callback and a processing thread.

A perception node that is slower than its sensor must work on the newest frame and drop the rest,
never queue without bound. DDS keep-last-1 also drops, but silently; this slot counts every frame it
replaces so the drop shows up in diagnostics.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item mailbox: ``put`` replaces the waiting item (counted as dropped), ``take`` blocks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Store ``item``; returns True when it replaced an unprocessed one."""
        with self._cond:
            replaced = self._has_item
            if replaced:
                self.dropped += 1
            self._item, self._has_item = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` s; None on timeout or after ``close``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def close(self) -> None:
        """Wake any waiting ``take`` so a worker thread can exit."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

"""Reading bags: the one way the package opens a rosbag2 (sqlite3 or mcap), through rosbags' AnyReader.

``with open_bag(path) as reader:`` gives a :class:`BagReader`; :meth:`BagReader.messages` yields
:class:`BagMessage` tuples (topic, msgtype, log-time stamp in ns, raw CDR) in log-time order, and
:meth:`BagReader.deserialize` / :meth:`BagReader.decoded` turn them into message objects.

Deserialisation uses the project typestore (:func:`perception_pkg.bag.get_typestore`), so messages read
from a bag are the classes the message factory builds and the replay writes. A connection falls back to
the definitions the bag carries (rosbags builds a typestore from them) when the project typestore lacks
its type, or when the bag records a type hash that differs from ours: the bag then holds another
version of that message, and parsing it with our layout would misread it rather than fail.

A message that does not deserialise (truncated or corrupt CDR) is counted per topic in
:attr:`BagReader.malformed`, with the last error in :attr:`BagReader.errors`, never raised: one bad
message in a recording must not end a replay or an evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from rosbags.typesys.store import Typestore

from perception_pkg.bag.typestore import get_typestore

log = logging.getLogger(__name__)


class BagMessage(NamedTuple):
    """One stored message, not yet deserialised."""

    topic: str
    msgtype: str
    stamp: int  # log time (ns): when the recorder (or our writer) stored it
    raw: bytes | memoryview  # CDR as stored
    connection: Connection | None = None  # the rosbags connection it came from (picks the typestore)


class BagReader:
    """An open bag (use :func:`open_bag`, or ``with BagReader(path) as reader``)."""

    def __init__(self, path: str | Path, typestore: Typestore | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag not found: {self.path}")
        self.typestore = typestore or get_typestore()
        self._reader = AnyReader([self.path], default_typestore=self.typestore)
        self._open = False
        self._known = self.typestore.fielddefs
        # connection id -> True: the project typestore deserialises it, False: the bag's own definitions
        self._ours: dict[int, bool] = {}
        self.malformed: dict[str, int] = {}
        self.errors: dict[str, str] = {}

    # -- lifetime ----------------------------------------------------------------------------------
    def open(self) -> BagReader:
        self._reader.open()
        self._open = True
        for c in self._reader.connections:
            ours = self._reader.is2 and c.msgtype in self._known
            if ours and c.digest and c.digest.startswith("RIHS01_"):
                ours = c.digest == self.typestore.hash_rihs01(c.msgtype)
            self._ours[c.id] = ours
        return self

    def close(self) -> None:
        if self._open:
            self._open = False
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what the bag holds ------------------------------------------------------------------------
    @property
    def connections(self) -> list[Connection]:
        """The bag's connections in its own order (a topic may have several: split recordings)."""
        return list(self._reader.connections)

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type (of its first connection), in the bag's order."""
        out: dict[str, str] = {}
        for c in self._reader.connections:
            out.setdefault(c.topic, c.msgtype)
        return out

    @property
    def message_count(self) -> int:
        return self._reader.message_count

    @property
    def start_time(self) -> int:
        return self._reader.start_time

    @property
    def end_time(self) -> int:
        """Log time (ns) just after the last message (rosbags' convention)."""
        return self._reader.end_time

    @property
    def duration(self) -> int:
        return self._reader.duration

    def require(self, topics: Collection[str]) -> None:
        """ValueError naming the topics the bag lacks, and the ones it has."""
        missing = sorted(set(topics) - set(self.topics))
        if missing:
            raise ValueError(f"{self.path}: no topic {', '.join(missing)} (it has {sorted(self.topics)})")

    # -- messages ----------------------------------------------------------------------------------
    def messages(self, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
        """Stored messages in log-time order, of ``topics`` only when given (all when None)."""
        conns: list[Connection] = []  # rosbags reads every connection for an empty selection
        if topics is not None:
            wanted = set(topics)
            conns = [c for c in self._reader.connections if c.topic in wanted]
            if not conns:
                return
        for conn, stamp, raw in self._reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, stamp, raw, conn)

    def deserialize(self, message: BagMessage) -> Any | None:
        """The message object, or None (counted in ``malformed`` / ``errors``) when it does not parse."""
        conn = message.connection
        # a BagMessage built by hand (no connection) is parsed with ours when we know its type
        ours = self._ours.get(conn.id, False) if conn is not None else message.msgtype in self._known
        try:
            if ours:
                return self.typestore.deserialize_cdr(message.raw, message.msgtype)
            return self._reader.deserialize(message.raw, message.msgtype)
        except Exception as exc:  # truncated or corrupt CDR, or an unknown type: count it, go on
            self.malformed[message.topic] = self.malformed.get(message.topic, 0) + 1
            self.errors[message.topic] = f"{type(exc).__name__}: {exc}"
            return None

    def decoded(self, topics: Collection[str] | None = None) -> Iterator[tuple[BagMessage, Any]]:
        """(stored message, message object) pairs; messages that do not deserialise are counted, skipped."""
        for m in self.messages(topics):
            msg = self.deserialize(m)
            if msg is not None:
                yield m, msg

    def warn_malformed(self) -> None:
        """Log the counts of messages that did not deserialise (for callers that report nothing else)."""
        for topic, n in sorted(self.malformed.items()):
            log.warning("%s: skipped %d message(s) on %s that do not deserialise: %s",
                        self.path, n, topic, self.errors[topic])  # fmt: skip


def open_bag(path: str | Path, typestore: Typestore | None = None) -> BagReader:
    """A :class:`BagReader` for a rosbag2 folder (sqlite3 or mcap storage); use it as a context manager."""
    return BagReader(path, typestore)


__all__ = ["BagMessage", "BagReader", "open_bag"]

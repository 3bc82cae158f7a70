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

A damaged bag is read as far as it can be. When rosbags cannot open it (an mcap without its footer or
summary, a .db3 with missing pages, metadata.yaml that does not match its files), :mod:`.salvage`
reads the messages before the damage; when a bag opens but a read fails part way, the messages before
it have been yielded already. Either way :attr:`BagReader.damage` says afterwards how many messages
were read and where reading stopped, and :meth:`BagReader.messages` ends there instead of raising.
When not one message can be read, :class:`BagUnreadable` (a ValueError) says why, in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from rosbags.typesys.store import Typestore

from perception_pkg.bag.salvage import BagUnreadable, Salvage, Stop
from perception_pkg.bag.typestore import get_typestore

log = logging.getLogger(__name__)


@dataclass
class BagDamage:
    """What was read of a damaged bag: ``read`` messages (of ``expected``, when metadata.yaml says) and
    where reading stopped, per damaged file (``stops``), or why the bag did not open (``opened``)."""

    read: int = 0
    expected: int | None = None
    opened: str = ""  # why rosbags could not open it (then the salvage reader read it)
    stops: list[str] = field(default_factory=list)
    note: str = ""  # e.g. a storage file metadata.yaml lists but that is missing

    def line(self) -> str:
        """One line for a terminal or a log."""
        of = f" of {self.expected}" if self.expected is not None else ""
        parts = [f"damaged bag: read {self.read}{of} messages"]
        if self.stops:
            parts.append(f"stopped at {'; '.join(self.stops)}")
        if self.opened:
            parts.append(f"it does not open as it is ({self.opened})")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages_read": self.read,
            "messages_expected": self.expected,
            "stopped_at": list(self.stops),
            "open_error": self.opened,
            "note": self.note,
        }


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
        self._reader: Any = None  # rosbags' AnyReader, or a Salvage when the bag is damaged
        self._open = False
        self._damage: BagDamage | None = None
        self._read = 0
        self._known = self.typestore.fielddefs
        # connection id -> True: the project typestore deserialises it, False: the bag's own definitions
        self._ours: dict[int, bool] = {}
        self.malformed: dict[str, int] = {}
        self.errors: dict[str, str] = {}

    # -- lifetime ----------------------------------------------------------------------------------
    def open(self) -> BagReader:
        try:
            self._reader = AnyReader([self.path], default_typestore=self.typestore)
            self._reader.open()
        except Exception as exc:  # rosbags raises its own errors, sqlite3's, yaml's, KeyError ...
            error = f"{type(exc).__name__}: {exc}".strip()
            if self.path.suffix.lower() == ".bag":  # ROS 1: no salvage reader
                raise BagUnreadable(f"{self.path}: cannot be read: {error}") from exc
            self._reader = Salvage(self.path, self.typestore, error)  # BagUnreadable when nothing is there
            self._damage = BagDamage(expected=self._reader.expected, opened=error, note=self._reader.note)
            log.warning("%s does not open (%s); reading what is there", self.path, error)
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
            self._reader = None

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
        self._read = 0
        salvaged = isinstance(self._reader, Salvage)
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, stamp, raw = next(it)
            except StopIteration:
                break
            except Exception as exc:  # a damaged chunk or page part way: keep what was read, say where
                self._stopped(f"after message {self._read}: {type(exc).__name__}: {exc}".strip())
                break
            self._read += 1
            if self._damage is not None:
                self._damage.read = self._read
            yield BagMessage(conn.topic, conn.msgtype, stamp, raw, conn)
        if salvaged:
            for stop in self._reader.stopped:
                self._stopped(str(stop))

    @property
    def damage(self) -> BagDamage | None:
        """None for an intact bag (or before reading); after :meth:`messages` ran, how much of a damaged
        bag was read and where reading stopped."""
        return self._damage

    def _stopped(self, where: str) -> None:
        if self._damage is None:
            self._damage = BagDamage(expected=self._reader.message_count)
        self._damage.read = self._read
        if where not in self._damage.stops:
            self._damage.stops.append(where)
            log.warning("%s: reading stopped at %s", self.path, where)

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


__all__ = ["BagDamage", "BagMessage", "BagReader", "BagUnreadable", "Stop", "open_bag"]

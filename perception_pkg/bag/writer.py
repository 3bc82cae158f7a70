"""Writing bags: the one way the package writes a rosbag2, through rosbags' Writer.

One setting for every bag we write (the simulator's, the replay's output): mcap storage, no
compression, rosbag2 metadata version 8. Version 8 is what replay output bags have always been (their
bytes must not change), it carries what we use (type hashes, ``custom_data``, offered QoS) and ROS 2
Iron and Jazzy both read it; version 9 only changes how the QoS list is spelled in metadata.yaml.

``with BagWriter(path) as bag:``, then :meth:`BagWriter.add_connection` per (topic, msgtype), in the
order the connections should appear, and :meth:`BagWriter.write` ``(topic, stamp, msg or raw CDR)``.
Message objects are serialised with the project typestore (:func:`perception_pkg.bag.get_typestore`).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from perception_pkg.bag.typestore import get_typestore

BAG_VERSION = 8
BAG_STORAGE = StoragePlugin.MCAP

_ZERO = QosTime(0, 0)
# what a latched ROS 2 publisher (/tf_static) offers: a subscriber that joins late still gets the message
LATCHED_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                  _ZERO, _ZERO, QosLiveliness.AUTOMATIC, _ZERO, False)  # fmt: skip


class BagWriter:
    """A rosbag2 being written; refuses to overwrite an existing path (rosbags' rule)."""

    def __init__(
        self,
        path: str | Path,
        *,
        typestore: Typestore | None = None,
        custom_data: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.typestore = typestore or get_typestore()
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=BAG_STORAGE)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._conns: dict[str, Connection] = {}
        self._open = False

    # -- lifetime ----------------------------------------------------------------------------------
    def open(self) -> BagWriter:
        self._writer.open()
        self._open = True
        return self

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml."""
        if self._open:
            self._open = False
            self._writer.close()

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- connections and messages ------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type, in the order the connections were added."""
        return {t: c.msgtype for t, c in self._conns.items()}

    def __contains__(self, topic: object) -> bool:
        return topic in self._conns

    def add_connection(self, topic: str, msgtype: str, *, latched: bool = False) -> Connection:
        """One connection per topic; adding a topic again with its type returns the connection it has.
        ``latched``: offer transient-local QoS, as a latched publisher does (``/tf_static``)."""
        conn = self._conns.get(topic)
        if conn is not None:
            if conn.msgtype != msgtype:
                raise ValueError(f"{self.path}: topic {topic} is {conn.msgtype}, not {msgtype}")
            return conn
        qos = [LATCHED_QOS] if latched else []
        conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore, offered_qos_profiles=qos)
        self._conns[topic] = conn
        return conn

    def write(self, topic: str, stamp: int, message: Any) -> None:
        """Store ``message`` (a message object, serialised here, or raw CDR bytes) at log time ``stamp``."""
        conn = self._conns.get(topic)
        if conn is None:
            raise KeyError(f"{self.path}: no connection for {topic}; add_connection it first")
        if isinstance(message, (bytes, bytearray, memoryview)):
            raw = message
        else:
            msgtype = getattr(message, "__msgtype__", conn.msgtype)
            if msgtype != conn.msgtype:
                raise ValueError(f"{self.path}: a {msgtype} written to {topic}, which is {conn.msgtype}")
            raw = self.typestore.serialize_cdr(message, conn.msgtype)
        self._writer.write(conn, stamp, raw)


__all__ = ["BAG_STORAGE", "BAG_VERSION", "LATCHED_QOS", "BagWriter"]

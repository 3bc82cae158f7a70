"""Reading what can be read from a damaged rosbag2 (mcap or sqlite3), for :class:`~.reader.BagReader`.

rosbags' readers need an intact file: an mcap whose footer and summary were not written (the recorder
was killed, the disk filled, the copy was cut short: even its last 100 bytes missing) or a .db3 with
missing pages does not open at all. Neither format needs that to be read:

- mcap: the summary and chunk index at the end are optional. :func:`scan_mcap` walks the records
  from the start (header, schemas, channels, chunks, messages) and stops at the first record that is
  cut or does not parse. A chunk that is cut is read up to the cut (uncompressed chunks record by
  record, zstd / lz4 chunks through a streaming decompressor), so only the messages after the damage
  are lost. File order is the recording order.
- sqlite3: the file is opened read-only and immutable (no journal or lock is touched) and the
  ``messages`` table is read row by row (rowid order, the recording order) until a row cannot be read.
  A cut file states more pages in its header than it has, and SQLite then refuses even its schema:
  such a file is read from a temporary copy of its whole pages whose header states the pages there
  are (disk space: the size of the bag file, freed on close).

:class:`Salvage` has the small surface of rosbags' AnyReader that BagReader uses (connections,
message_count, start/end time, messages, deserialize), so the rest of the package reads a damaged bag
as it reads a healthy one; :attr:`Salvage.stopped` says where and why reading stopped.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK, _OP_DATA_END, _OP_FOOTER = 0x03, 0x04, 0x05, 0x06, 0x0F, 0x02
_RECORD_HEAD = struct.Struct("<BQ")
_MESSAGE_HEAD = struct.Struct("<HIQQ")
_CHUNK_HEAD = struct.Struct("<QQQI")


class BagUnreadable(ValueError):
    """Nothing can be read from a bag: the reason names the file and what is wrong with it."""


@dataclass(frozen=True)
class Stop:
    """Where reading a damaged file stopped: ``where`` is a byte offset (mcap) or a row (sqlite3)."""

    file: Path
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file.name}: {self.where}: {self.reason}"


class _Cut(Exception):
    """Raised inside the scanners: the file is damaged from ``offset`` on."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


# ------------------------------------------------------------------------------------------------ mcap
@dataclass(frozen=True)
class McapSchema:
    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class McapChannel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str


@dataclass(frozen=True)
class McapMessage:
    channel_id: int
    log_time: int
    data: bytes


class _Buf:
    """Reads mcap primitives from a bytes object; running past the end raises _Cut at ``base + pos``."""

    def __init__(self, data: bytes, base: int) -> None:
        self.data = data
        self.base = base
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Cut(self.base + self.pos, f"{what} cut short ({len(self.data) - self.pos} of {n} bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
        return fmt.unpack(self.take(fmt.size, what))

    def string(self, what: str) -> str:
        (n,) = struct.unpack("<I", self.take(4, what))
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Cut(self.base + self.pos, f"{what} is not UTF-8") from exc

    def blob(self, what: str) -> bytes:
        (n,) = struct.unpack("<I", self.take(4, what))
        return self.take(n, what)


def _parse(opcode: int, body: bytes, base: int) -> McapSchema | McapChannel | McapMessage | None:
    b = _Buf(body, base)
    if opcode == _OP_SCHEMA:
        (sid,) = struct.unpack("<H", b.take(2, "schema id"))
        return McapSchema(sid, b.string("schema name"), b.string("schema encoding"), b.blob("schema data"))
    if opcode == _OP_CHANNEL:
        cid, sid = struct.unpack("<HH", b.take(4, "channel ids"))
        return McapChannel(cid, sid, b.string("channel topic"), b.string("message encoding"))
    if opcode == _OP_MESSAGE:
        cid, _, log_time, _ = b.unpack(_MESSAGE_HEAD, "message header")
        return McapMessage(cid, log_time, body[_MESSAGE_HEAD.size :])
    return None


def _inner_records(data: bytes, base: int, complete: bool) -> Iterator[Any]:
    """The records inside a chunk's (possibly partial) record bytes; _Cut where they stop parsing."""
    pos = 0
    while pos < len(data):
        if pos + _RECORD_HEAD.size > len(data):
            raise _Cut(base + pos, "chunk cut inside a record header")
        opcode, length = _RECORD_HEAD.unpack_from(data, pos)
        start = pos + _RECORD_HEAD.size
        if start + length > len(data):
            raise _Cut(base + pos, f"chunk cut inside a record ({len(data) - start} of {length} bytes)")
        rec = _parse(opcode, data[start : start + length], base + start)
        if rec is not None:
            yield rec
        pos = start + length
    if not complete:
        raise _Cut(base + pos, "chunk cut after its last whole record")


def _decompress_partial(compression: str, data: bytes, size: int) -> tuple[bytes, bool]:
    """(bytes decompressed, complete?) for a chunk's compressed records, whole or cut short."""
    if compression == "zstd":
        import zstandard

        out = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    elif compression == "lz4":
        import lz4.frame

        dec = lz4.frame.LZ4FrameDecompressor()
        out = dec.decompress(data)
    else:
        raise _Cut(0, f"chunk compression {compression!r} is not supported")
    return out[:size], len(out) >= size


def _chunk_records(body: bytes, base: int, cut: bool) -> Iterator[Any]:
    b = _Buf(body, base)
    _, _, size, _ = b.unpack(_CHUNK_HEAD, "chunk header")
    compression = b.string("chunk compression")
    (length,) = struct.unpack("<Q", b.take(8, "chunk records length"))
    data = body[b.pos : b.pos + length]
    complete = not cut and len(data) == length
    if compression:
        try:
            data, whole = _decompress_partial(compression, data, size)
        except ImportError as exc:
            raise _Cut(base, f"chunk compressed with {compression}, whose module is missing: {exc}") from exc
        except _Cut as exc:
            raise _Cut(base, exc.reason) from exc
        except Exception as exc:  # a corrupt compressed stream
            raise _Cut(base, f"{compression} chunk does not decompress: {exc}") from exc
        complete = complete and whole
    yield from _inner_records(data, base + b.pos, complete)


def scan_mcap(path: Path) -> Iterator[McapSchema | McapChannel | McapMessage | Stop]:
    """The schemas, channels and messages of an mcap file in file order; a :class:`Stop` last when the
    file is damaged (nothing after it is read). Memory: one record (or one chunk) at a time."""
    size = path.stat().st_size
    with path.open("rb") as f:
        try:
            yield from _scan(f, size)
        except _Cut as cut:
            yield Stop(path, f"byte {cut.offset} of {size}", cut.reason)


def _scan(f: BinaryIO, size: int) -> Iterator[Any]:
    magic = f.read(len(MCAP_MAGIC))
    if magic != MCAP_MAGIC:
        raise _Cut(0, f"not an mcap file (starts {magic[:8]!r})")
    pos = len(MCAP_MAGIC)
    while True:
        head = f.read(_RECORD_HEAD.size)
        if not head:
            raise _Cut(pos, "file ends without a footer (the recording was not closed)")
        if len(head) < _RECORD_HEAD.size:
            raise _Cut(pos, "file cut inside a record header")
        opcode, length = _RECORD_HEAD.unpack(head)
        left = size - pos - _RECORD_HEAD.size
        if opcode == _OP_FOOTER or opcode == _OP_DATA_END:
            return  # the data section is complete; the summary after it is not needed
        cut = length > left
        if cut and opcode != _OP_CHUNK:
            raise _Cut(pos, f"file cut inside a record (opcode {opcode:#x}, {left} of {length} bytes)")
        body = f.read(min(length, left))
        base = pos + _RECORD_HEAD.size
        if opcode == _OP_CHUNK:
            yield from _chunk_records(body, base, cut)
        else:
            rec = _parse(opcode, body, base)
            if rec is not None:
                yield rec
        pos = base + length


# ------------------------------------------------------------------------------------------------ salvage
def _msgdef(encoding: str, text: str) -> MessageDefinition:
    fmt = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}.get(encoding)
    return (
        MessageDefinition(fmt, text)
        if fmt is not None
        else MessageDefinition(MessageDefinitionFormat.NONE, "")
    )


def _types_of(msgdef: MessageDefinition, msgtype: str) -> dict[str, Any]:
    if msgdef.format == MessageDefinitionFormat.MSG:
        return dict(get_types_from_msg(msgdef.data, msgtype))
    if msgdef.format == MessageDefinitionFormat.IDL:
        sep = "=" * 80 + "\n"
        parts = msgdef.data.split(sep)[1:] if msgdef.data.startswith(f"{sep}IDL: ") else [msgdef.data]
        out: dict[str, Any] = {}
        for part in parts:
            out.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
        return out
    return {}


def _storage_files(path: Path) -> tuple[list[Path], int | None, str]:
    """The storage files of a bag (folder or file), the message count its metadata.yaml states, and a
    note on what is missing (empty when nothing is)."""
    if path.is_file():
        return [path], None, ""
    meta = path / "metadata.yaml"
    expected = None
    listed: list[str] = []
    note = ""
    if meta.is_file():
        try:
            info = (yaml.safe_load(meta.read_text()) or {})["rosbag2_bagfile_information"]
            listed = [str(p) for p in info.get("relative_file_paths") or []]
            expected = int(info["message_count"]) if info.get("message_count") is not None else None
        except (yaml.YAMLError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            note = f"metadata.yaml does not parse ({type(exc).__name__})"
    found = sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3") and p.is_file())
    files = [path / name for name in listed if (path / name).is_file()]
    missing = [name for name in listed if not (path / name).is_file()]
    files += [p for p in found if p not in files]
    if missing:
        note = (
            f"metadata.yaml lists {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} missing"
        )
    return files, expected, note


@dataclass
class _Topic:
    """A connection found while scanning, before its message count is known."""

    file: int
    key: int  # mcap channel id or sqlite topic id
    topic: str
    msgtype: str
    msgdef: MessageDefinition
    digest: str
    count: int = 0
    first: int = 0
    last: int = 0

    def saw(self, stamp: int) -> None:
        self.first = stamp if self.count == 0 else min(self.first, stamp)
        self.last = stamp if self.count == 0 else max(self.last, stamp)
        self.count += 1


class Salvage:
    """The readable part of a damaged rosbag2, with the AnyReader surface :class:`BagReader` uses.

    Raises :class:`BagUnreadable` when not one message can be read from any file of the bag.
    ``stopped`` lists where reading stopped, one entry per damaged file (found again, and recorded, by
    each pass of :meth:`messages`); ``expected`` is the message count metadata.yaml states, if any.
    """

    is2 = True

    def __init__(self, path: Path, default_typestore: Typestore, error: str) -> None:
        self.path = path
        files, self.expected, note = _storage_files(path)
        if not files:
            why = note or "no .mcap or .db3 file in it"
            raise BagUnreadable(f"{path}: nothing to read: {why} (opening it said: {error})")
        self.files = files
        self.note = note
        self.stopped: list[Stop] = []
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._sqlite_copies: dict[Path, Path] = {}
        found: list[_Topic] = []
        problems: list[str] = []
        for i, f in enumerate(files):
            scan = self._scan_mcap if _magic(f) == "mcap" else self._scan_sqlite
            try:
                found += scan(i, f)
            except BagUnreadable as exc:
                problems.append(str(exc))
        self.message_count = sum(t.count for t in found)
        if self.message_count == 0:
            self.close()
            why = "; ".join(problems) or "no message before the damage"
            raise BagUnreadable(f"{path}: nothing can be read: {why} (opening it said: {error})")
        types: dict[str, Any] = {}
        for t in found:
            try:
                types.update(_types_of(t.msgdef, t.msgtype))
            except Exception:  # a definition that does not parse: the project typestore may know the type
                t.msgdef = MessageDefinition(MessageDefinitionFormat.NONE, "")
        self.typestore = get_typestore(Stores.EMPTY)
        self.typestore.register({**default_typestore.fielddefs, **types})
        self.connections: list[Connection] = []
        self._conn: dict[tuple[int, int], Connection] = {}  # (file index, channel / topic id) -> connection
        for t in found:
            digest = t.digest
            if not digest and t.msgtype in types:
                try:  # the hash of the bag's own definition, compared with ours by BagReader
                    digest = self.typestore.hash_rihs01(t.msgtype)
                except Exception:
                    digest = ""
            conn = Connection(
                id=len(self.connections) + 1,
                topic=t.topic,
                msgtype=t.msgtype,
                msgdef=t.msgdef,
                digest=digest,
                msgcount=t.count,
                ext=ConnectionExtRosbag2("cdr", []),
                owner=self,
            )
            self.connections.append(conn)
            self._conn[(t.file, t.key)] = conn
        read = [t for t in found if t.count]
        self.start_time = min(t.first for t in read)
        self.end_time = max(t.last for t in read) + 1  # rosbags' convention: just after the last one
        self.problems = problems

    # -- AnyReader surface -------------------------------------------------------------------------
    @property
    def duration(self) -> int:
        return self.end_time - self.start_time

    def open(self) -> None:
        """Nothing to do: files are opened by :meth:`messages`."""

    def close(self) -> None:
        """Remove the temporary copies of cut .db3 files (:meth:`messages` closes what it opens)."""
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        self._sqlite_copies.clear()

    def deserialize(self, raw: bytes | memoryview, msgtype: str) -> Any:
        return self.typestore.deserialize_cdr(raw, msgtype)

    def messages(self, connections: Collection[Connection] = ()) -> Iterator[tuple[Connection, int, bytes]]:
        """Messages in file order (the recording order), file after file, up to each file's damage."""
        wanted = {c.id for c in connections} if connections else None
        self.stopped = []
        for i, f in enumerate(self.files):
            items = self._mcap_messages(i, f) if _magic(f) == "mcap" else self._sqlite_messages(i, f)
            for conn, stamp, raw in items:
                if wanted is None or conn.id in wanted:
                    yield conn, stamp, raw

    # -- mcap --------------------------------------------------------------------------------------
    @staticmethod
    def _scan_mcap(i: int, f: Path) -> list[_Topic]:
        schemas: dict[int, McapSchema] = {}
        topics: dict[int, _Topic] = {}
        for rec in scan_mcap(f):
            if isinstance(rec, McapSchema):
                schemas[rec.id] = rec
            elif isinstance(rec, McapChannel):
                schema = schemas.get(rec.schema_id)
                if schema is None or rec.message_encoding != "cdr":
                    continue  # not a ROS 2 channel, or its schema is lost: its messages cannot be read
                msgdef = _msgdef(schema.encoding, schema.data.decode("utf-8", "replace"))
                topics[rec.id] = _Topic(i, rec.id, rec.topic, schema.name, msgdef, "")
            elif isinstance(rec, McapMessage):
                if rec.channel_id in topics:
                    topics[rec.channel_id].saw(rec.log_time)
            elif not any(t.count for t in topics.values()):
                raise BagUnreadable(str(rec))  # damaged before its first message
        return list(topics.values())

    def _mcap_messages(self, i: int, f: Path) -> Iterator[tuple[Connection, int, bytes]]:
        for rec in scan_mcap(f):
            if isinstance(rec, McapMessage):
                conn = self._conn.get((i, rec.channel_id))
                if conn is not None:
                    yield conn, rec.log_time, rec.data
            elif isinstance(rec, Stop):
                self.stopped.append(rec)

    # -- sqlite3 -----------------------------------------------------------------------------------
    def _connect(self, f: Path) -> sqlite3.Connection:
        # immutable: no journal, WAL or lock is looked for or written (the file may be on a read-only copy)
        source = self._sqlite_copies.get(f, f)
        return sqlite3.connect(f"file:{source.resolve()}?mode=ro&immutable=1", uri=True)

    def _topics(self, f: Path) -> tuple[sqlite3.Connection, list[tuple[Any, ...]]]:
        query = "SELECT id, name, type, serialization_format FROM topics"
        try:
            db = self._connect(f)
            return db, db.execute(query).fetchall()
        except sqlite3.Error as exc:
            first = exc
        copy = _whole_pages_copy(f, self._tmp())
        if copy is None:
            raise BagUnreadable(f"{f.name}: its topics table cannot be read: {first}")
        self._sqlite_copies[f] = copy
        try:
            db = self._connect(f)
            return db, db.execute(query).fetchall()
        except sqlite3.Error as exc:
            raise BagUnreadable(f"{f.name}: its topics table cannot be read: {exc}") from exc

    def _tmp(self) -> Path:
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="perception-salvage-")
        return Path(self._tmpdir.name)

    def _scan_sqlite(self, i: int, f: Path) -> list[_Topic]:
        db, rows = self._topics(f)
        try:
            query = "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
            defs = {row[0]: _msgdef(row[1], row[2]) for row in db.execute(query)}
        except sqlite3.Error:  # rosbag2 before version 8 has no definitions table
            defs = {}
        try:
            hashes = dict(db.execute("SELECT id, type_description_hash FROM topics").fetchall())
        except sqlite3.Error:
            hashes = {}
        none = MessageDefinition(MessageDefinitionFormat.NONE, "")
        topics = {
            tid: _Topic(i, tid, name, msgtype, defs.get(msgtype, none), str(hashes.get(tid) or ""))
            for tid, name, msgtype, fmt in rows
            if fmt == "cdr"
        }
        try:
            for tid, stamp in db.execute("SELECT topic_id, timestamp FROM messages"):
                if tid in topics:
                    topics[tid].saw(stamp)
        except sqlite3.Error as exc:
            if not any(t.count for t in topics.values()):
                raise BagUnreadable(f"{f.name}: no message row can be read: {exc}") from exc
        finally:
            db.close()
        return list(topics.values())

    def _sqlite_messages(self, i: int, f: Path) -> Iterator[tuple[Connection, int, bytes]]:
        db = self._connect(f)
        row = 0
        try:
            for row_id, tid, stamp, data in db.execute("SELECT id, topic_id, timestamp, data FROM messages"):
                row = row_id
                conn = self._conn.get((i, tid))
                if conn is not None:
                    yield conn, stamp, data
        except sqlite3.Error as exc:
            self.stopped.append(Stop(f, f"after message row {row}", f"sqlite: {exc}"))
        finally:
            db.close()


def _magic(f: Path) -> str:
    with f.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(SQLITE_MAGIC) or (not head.startswith(MCAP_MAGIC) and f.suffix == ".db3"):
        return "sqlite"  # sqlite3 says what is wrong with a .db3 that is not a database
    return "mcap"  # the scanner says what is wrong with anything else


def _whole_pages_copy(f: Path, folder: Path) -> Path | None:
    """A copy of a cut sqlite3 file's whole pages, its header's page count set to them; None when the
    file is not sqlite3 or has not even its first page."""
    with f.open("rb") as src:
        head = src.read(100)
        if not head.startswith(SQLITE_MAGIC) or len(head) < 100:
            return None
        page = int.from_bytes(head[16:18], "big")
        page = 65536 if page == 1 else page
        pages = f.stat().st_size // page if page >= 512 else 0
        if pages < 1:
            return None
        out = folder / f"{f.stem}.whole-pages.db3"
        src.seek(0)
        with out.open("wb") as dst:
            shutil.copyfileobj(_limited(src, pages * page), dst)
            dst.seek(28)  # "in-header database size" (pages), which SQLite trusts over the file size
            dst.write(pages.to_bytes(4, "big"))
    return out


def _limited(f: BinaryIO, n: int) -> Any:
    """A file-like object that reads at most ``n`` bytes of ``f``."""

    class Reader:
        left = n

        def read(self, size: int = -1) -> bytes:
            size = self.left if size < 0 else min(size, self.left)
            data = f.read(size)
            self.left -= len(data)
            return data

    return Reader()

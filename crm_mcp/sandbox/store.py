"""SQLite storage of the sandbox: one table of JSON records, scoped by consumer.

`records(consumer, resource, object_id, id, seq, k_<sort field>..., data)`: `object_id` is the
custom object schema of a custom object ('' otherwise), `seq` the insertion order, and one
`k_<field>` column per sortable field holds that record's sort key (see `query.sort_keys`), so
that keyset pages are index range scans. A consumer's seed copy is written the first time the
consumer is seen (`consumers` remembers who has been seeded), dated relative to that moment (or
to the pinned `now`), as one bulk insert of rows prepared once per seed shift; at most
`max_consumers` consumers get one (about 1.3 MB each), a further consumer is refused with a 402
in the contract's error shape. A new database file is created readable and writable by its owner
only.

One connection guarded by a lock; every write commits before it returns, so an acknowledged
write survives a restart.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm_mcp.sandbox.errors import RATE_LIMIT, ApiError
from crm_mcp.sandbox.query import DEFAULT_ORDER, Predicate, Sort, sort_columns, sort_keys

__all__ = ["DEFAULT_MAX_CONSUMERS", "Row", "Store"]

Record = dict[str, Any]
Row = tuple[Any, str, Record]  # (sort key, id, record)
DEFAULT_MAX_CONSUMERS = 25  # seeded copies per database: about 33 MB


def _create_private(path: Path) -> None:
    """Create the database file (and its directory) for the owner only, before SQLite opens it;
    SQLite gives its -wal and -shm files the database file's permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def consumer_limit_error(limit: int) -> ApiError:
    return ApiError(
        402,
        RATE_LIMIT,
        f"Consumer limit reached: this sandbox gives at most {limit} consumers their own copy of the demo CRM; "
        "use the x-apideck-consumer-id of an existing consumer",
        f"You have reached your limit of {limit} consumers",
    )


def _column(field: str) -> str:
    if field == DEFAULT_ORDER:
        return "seq"
    if field not in sort_columns():
        raise ValueError(f"not a sortable field: {field!r}")
    return f"k_{field}"


class Store:
    """The sandbox's records. Thread-safe; every method is a short blocking call."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        seed: bool = True,
        now: datetime | None = None,
        max_consumers: int | None = DEFAULT_MAX_CONSUMERS,
    ) -> None:
        """`seed`: give each new consumer the demo CRM (False: start empty). `now`: the time the
        seed's dates are relative to (None: the clock when a consumer is seeded). `max_consumers`:
        how many consumers get a seeded copy (None: no limit)."""
        self.path = str(path)
        if self.path != ":memory:":
            _create_private(Path(self.path))
        self.seeds = seed
        self.now = now
        self.max_consumers = max_consumers
        self._seed_cache: tuple[timedelta, list[tuple[Any, ...]]] | None = None
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._known: set[str] = set()
        with self._lock:
            self._setup()
            self._seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0]

    # ------------------------------------------------------------------ schema

    def _setup(self) -> None:
        conn = self._conn
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        keys = ", ".join(f"k_{f} {'REAL' if numeric else 'TEXT'}" for f, numeric in sort_columns().items())
        conn.execute(
            "CREATE TABLE IF NOT EXISTS records (consumer TEXT NOT NULL, resource TEXT NOT NULL, "
            "object_id TEXT NOT NULL DEFAULT '', id TEXT NOT NULL, seq INTEGER NOT NULL, "
            f"{keys}, data TEXT NOT NULL, PRIMARY KEY (consumer, resource, object_id, id))"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS consumers (consumer TEXT PRIMARY KEY, seeded INTEGER NOT NULL)")
        present = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
        added = False
        for field, numeric in sort_columns().items():
            if f"k_{field}" not in present:  # a database written before this sort field existed
                conn.execute(f"ALTER TABLE records ADD COLUMN k_{field} {'REAL' if numeric else 'TEXT'}")
                added = True
        for column in ["seq", *(f"k_{f}" for f in sort_columns())]:
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS records_{column} ON records (consumer, resource, object_id, {column}, id)"
            )
        if added:
            self._rekey()

    def _rekey(self) -> None:
        rows = self._conn.execute("SELECT rowid, data FROM records").fetchall()
        assignments = ", ".join(f"k_{f} = ?" for f in sort_columns())
        with self._transaction():
            for rowid, data in rows:
                self._conn.execute(
                    f"UPDATE records SET {assignments} WHERE rowid = ?", [*sort_keys(json.loads(data)).values(), rowid]
                )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ consumers and seed

    def _seed_rows(self) -> list[tuple[Any, ...]]:
        """The demo CRM as ready-made rows (resource, object_id, id, sort keys..., data), built once
        per seed shift: seeding a consumer is then one bulk insert of the same records."""
        from crm_mcp.sandbox.seed import build_seed, seed_shift

        now = self.now or datetime.now(UTC)
        shift = seed_shift(now)
        if self._seed_cache is None or self._seed_cache[0] != shift:
            rows = []
            for resource, records in build_seed(now).items():
                for record in records:
                    record = dict(record)
                    object_id = str(record.pop("object_id", "") or "")
                    keys = sort_keys(record).values()
                    rows.append((resource, object_id, record["id"], *keys, json.dumps(record)))
            self._seed_cache = (shift, rows)
        return self._seed_cache[1]

    def knows(self, consumer: str) -> bool:
        """True once `consumer` has its records (then `ensure_consumer` is a no-op)."""
        return consumer in self._known

    def ensure_consumer(self, consumer: str) -> None:
        """Give `consumer` its own copy of the seed data the first time it is seen (an ApiError
        402 when `max_consumers` consumers already have one)."""
        if consumer in self._known:
            return
        with self._lock:
            if consumer in self._known:
                return
            seen = self._conn.execute("SELECT 1 FROM consumers WHERE consumer = ?", (consumer,)).fetchone()
            if seen is None:
                if self.seeds and self.max_consumers is not None:
                    (seeded,) = self._conn.execute("SELECT COUNT(*) FROM consumers WHERE seeded = 1").fetchone()
                    if seeded >= self.max_consumers:
                        raise consumer_limit_error(self.max_consumers)
                rows = self._seed_rows() if self.seeds else []
                try:
                    with self._transaction():
                        self._conn.execute(
                            "INSERT INTO consumers (consumer, seeded) VALUES (?, ?)", (consumer, int(bool(rows)))
                        )
                        self._insert_rows(consumer, rows)
                except sqlite3.IntegrityError:
                    pass  # another process sharing the database file seeded this consumer first
            self._known.add(consumer)

    # ------------------------------------------------------------------ records

    def _insert(self, consumer: str, resource: str, object_id: str, record: Record) -> None:
        row = (resource, object_id, record["id"], *sort_keys(record).values(), json.dumps(record))
        self._insert_rows(consumer, [row])

    def _insert_rows(self, consumer: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows (resource, object_id, id, sort keys in `sort_columns()` order, data), each
        with the next `seq`."""
        columns = ", ".join(f"k_{f}" for f in sort_columns())
        marks = ", ".join("?" for _ in sort_columns())
        first = self._seq + 1
        self._seq += len(rows)
        self._conn.executemany(
            f"INSERT INTO records (consumer, resource, object_id, id, seq, {columns}, data) "
            f"VALUES (?, ?, ?, ?, ?, {marks}, ?)",
            ((consumer, *row[:3], seq, *row[3:]) for seq, row in enumerate(rows, first)),
        )

    def insert(self, consumer: str, resource: str, object_id: str, record: Record) -> bool:
        """Add `record` (which has its `id`); False when that id is taken."""
        with self._lock, self._transaction():
            try:
                self._insert(consumer, resource, object_id, record)
            except sqlite3.IntegrityError:
                return False
        return True

    def get(self, consumer: str, resource: str, object_id: str, id_: str) -> Record | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM records WHERE consumer = ? AND resource = ? AND object_id = ? AND id = ?",
                (consumer, resource, object_id, id_),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def update(
        self, consumer: str, resource: str, object_id: str, id_: str, change: Callable[[Record], Record]
    ) -> Record | None:
        """Replace a record with `change(record)`, atomically; None when there is no such record."""
        with self._lock:
            where = "consumer = ? AND resource = ? AND object_id = ? AND id = ?"
            scope = (consumer, resource, object_id, id_)
            row = self._conn.execute(f"SELECT data FROM records WHERE {where}", scope).fetchone()
            if row is None:
                return None
            record = change(json.loads(row[0]))
            keys = sort_keys(record)
            assignments = ", ".join(f"k_{f} = ?" for f in keys)
            with self._transaction():
                self._conn.execute(
                    f"UPDATE records SET {assignments}, data = ? WHERE {where}",
                    [*keys.values(), json.dumps(record), *scope],
                )
            return record

    def delete(self, consumer: str, resource: str, object_id: str, id_: str, *, cascade: str | None = None) -> bool:
        """Delete a record (and, with `cascade`, every `cascade` record whose object_id is its id)."""
        with self._lock, self._transaction():
            cur = self._conn.execute(
                "DELETE FROM records WHERE consumer = ? AND resource = ? AND object_id = ? AND id = ?",
                (consumer, resource, object_id, id_),
            )
            if cur.rowcount and cascade:
                self._conn.execute(
                    "DELETE FROM records WHERE consumer = ? AND resource = ? AND object_id = ?",
                    (consumer, cascade, id_),
                )
        return cur.rowcount > 0

    def scan(
        self,
        consumer: str,
        resource: str,
        object_id: str,
        sort: Sort,
        *,
        start: tuple[Any, str] | None = None,
        backward: bool = False,
        predicate: Predicate | None = None,
        limit: int,
    ) -> list[Row]:
        """Up to `limit` records matching `predicate` in `sort` order (reversed when `backward`),
        strictly after `start` = (sort key, id) in that order."""
        column = _column(sort.field)
        descending = sort.descending != backward
        direction, comparison = ("DESC", "<") if descending else ("ASC", ">")
        sql = f"SELECT {column}, id, data FROM records WHERE consumer = ? AND resource = ? AND object_id = ?"
        params: list[Any] = [consumer, resource, object_id]
        if start is not None:
            sql += f" AND ({column}, id) {comparison} (?, ?)"
            params += list(start)
        sql += f" ORDER BY {column} {direction}, id {direction}"
        out: list[Row] = []
        with self._lock:
            cursor = self._conn.execute(sql, params)
            try:
                while len(out) < limit:
                    batch = cursor.fetchmany(max(limit - len(out), 32) if predicate else limit - len(out))
                    if not batch:
                        break
                    for key, id_, data in batch:
                        record = json.loads(data)
                        if predicate is None or predicate(record):
                            out.append((key, id_, record))
                            if len(out) == limit:
                                break
            finally:
                cursor.close()
        return out

    def count(self, consumer: str, resource: str, object_id: str = "") -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM records WHERE consumer = ? AND resource = ? AND object_id = ?",
                (consumer, resource, object_id),
            ).fetchone()
        return int(row[0])

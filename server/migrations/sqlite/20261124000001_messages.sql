-- See the PostgreSQL migration for the reasoning. SQLite serialises writers,
-- so the counter row is updated by one transaction at a time.
CREATE TABLE rooms (
    name       TEXT PRIMARY KEY NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE messages (
    room       TEXT NOT NULL REFERENCES rooms (name),
    seq        INTEGER NOT NULL,
    id         BLOB NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'broadcast')),
    sender     TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

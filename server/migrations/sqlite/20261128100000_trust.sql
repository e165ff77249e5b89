-- See the PostgreSQL migration for the reasoning.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    author     TEXT NOT NULL UNIQUE,
    name       TEXT,
    subject    TEXT UNIQUE,
    moderator  INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    seen_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX sessions_seen_at ON sessions (seen_at);

CREATE TABLE names (
    key        TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    author     TEXT NOT NULL,
    held_until TEXT NOT NULL
);
CREATE INDEX names_author ON names (author);

CREATE TABLE bans (
    author     TEXT PRIMARY KEY NOT NULL,
    by_author  TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- SQLite cannot change a CHECK constraint in place: rebuild the table.
CREATE TABLE messages_new (
    room       TEXT NOT NULL REFERENCES rooms (name),
    seq        INTEGER NOT NULL,
    id         BLOB NOT NULL UNIQUE,
    kind       TEXT NOT NULL
               CHECK (kind IN ('user', 'broadcast', 'edit', 'delete', 'react', 'unreact')),
    sender     TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    author     TEXT,
    target     INTEGER,
    edited_at  TEXT,
    deleted_at TEXT,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
INSERT INTO messages_new (room, seq, id, kind, sender, content, created_at)
    SELECT room, seq, id, kind, sender, content, created_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_author ON messages (author, created_at) WHERE author IS NOT NULL;

CREATE TABLE reactions (
    room   TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    emoji  TEXT NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (room, seq, emoji, author)
) WITHOUT ROWID;

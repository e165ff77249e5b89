-- Who said it, and the power to take it back.
--
-- Sessions: a browser's cookie (or an API token) is a random token; only
-- its SHA-256 is stored. `author` is the public, opaque id messages carry.
-- An identity from the load balancer's sign-in has a row keyed by its
-- subject instead.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    author     TEXT NOT NULL UNIQUE,
    name       TEXT,
    subject    TEXT UNIQUE,
    moderator  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    seen_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sessions_seen_at ON sessions (seen_at);

-- Held names: a name (compared after NFKC and case folding, `key`) belongs
-- to the author who last used it until `held_until`.
CREATE TABLE names (
    key        TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    author     TEXT NOT NULL,
    held_until TIMESTAMPTZ NOT NULL
);
CREATE INDEX names_author ON names (author);

CREATE TABLE bans (
    author     TEXT PRIMARY KEY,
    by_author  TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages get their author, and events (edit, delete, react, unreact)
-- join them in each room's sequence, pointing at the message they change.
-- A message row keeps its current state: edited text, or a tombstone.
ALTER TABLE messages ADD COLUMN author TEXT;
ALTER TABLE messages ADD COLUMN target BIGINT;
ALTER TABLE messages ADD COLUMN edited_at TIMESTAMPTZ;
ALTER TABLE messages ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE messages DROP CONSTRAINT messages_kind_check;
ALTER TABLE messages ADD CONSTRAINT messages_kind_check
    CHECK (kind IN ('user', 'broadcast', 'edit', 'delete', 'react', 'unreact'));
CREATE INDEX messages_author ON messages (author, created_at) WHERE author IS NOT NULL;

-- Who reacted with what to which message (counts are read from here).
CREATE TABLE reactions (
    room   TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    emoji  TEXT NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (room, seq, emoji, author)
);

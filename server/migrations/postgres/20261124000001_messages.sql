-- Rooms exist once something is posted to them. `last_seq` is the per-room
-- sequence counter: taking the next value updates (and so row-locks) this row
-- until the inserting transaction commits, which makes seqs gapless and
-- committed in order.
CREATE TABLE rooms (
    name       TEXT PRIMARY KEY,
    last_seq   BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    room       TEXT NOT NULL REFERENCES rooms (name),
    seq        BIGINT NOT NULL,
    id         UUID NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'broadcast')),
    sender     TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room, seq),
    CONSTRAINT messages_id_key UNIQUE (id)
);

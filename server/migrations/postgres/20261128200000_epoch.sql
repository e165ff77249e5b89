-- The database's identity: a random id that changes whenever the database
-- is restored from a backup (`chat restore` on SQLite; `chat new-epoch`
-- after `pg_restore` or a point-in-time restore on PostgreSQL) or created
-- afresh. Seqs are only comparable within one epoch: a client that knew
-- another epoch reloads its rooms instead of resuming after its last seq.
-- One row, read once at start (and checked every second) by each instance.
CREATE TABLE epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL
);
INSERT INTO epoch (id, epoch) VALUES (1, replace(gen_random_uuid()::text, '-', ''));

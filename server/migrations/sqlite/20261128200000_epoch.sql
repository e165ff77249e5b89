-- See the PostgreSQL migration for the reasoning.
CREATE TABLE epoch (
    id    INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch TEXT NOT NULL
);
INSERT INTO epoch (id, epoch) VALUES (1, lower(hex(randomblob(16))));

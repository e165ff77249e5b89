-- When a room last had a message, for the room list (newest first).
ALTER TABLE rooms ADD COLUMN last_active_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000Z';
UPDATE rooms SET last_active_at = COALESCE(
    (SELECT max(created_at) FROM messages WHERE messages.room = rooms.name), created_at);
CREATE INDEX rooms_last_active_at ON rooms (last_active_at DESC);

#!/usr/bin/env python3
"""Writes the seeds of the `validation` target (seeds/validation/).

Its input is `Case` (fuzz_targets/validation.rs) decoded by `arbitrary` 1.x:
`repeat` (1 byte), then for each Option a flag byte and the string's bytes,
then `sender`'s bytes, then `content` (the rest); string lengths are read
from the *end* of the input, one byte each (inputs up to 256 bytes), the
first field's last. Check a seed with `cargo +nightly fuzz fmt validation FILE`.
"""
import os

def encode(repeat, room, id, sender, content):
    front, sizes = bytes([repeat]), []
    for s in (room, id):
        if s is None:
            front += b"\x00"
        else:
            b = s.encode()
            front += b"\x01" + b
            sizes.append(len(b))
    b = sender.encode()
    front += b
    sizes.append(len(b))
    data = front + content.encode() + bytes(reversed(sizes))
    assert len(data) <= 256
    return data

SEEDS = {
    "hello": (0, None, None, "alice", "Hello"),
    "room-and-id": (0, "lobby", "0b8a3a2e-5c1c-4a39-9c1a-2f4f2b8f5d10", "alice", "Hello"),
    "trimmed-crlf": (0, " general ", "", "  bob ", "line 1\r\nline 2\n"),
    "unicode": (0, "a-b_9", None, "名前", "こんにちは 🌸"),
    "long": (199, "lobby", None, "alice", "0123456789"),       # 2000 chars
    "too-long": (200, "lobby", None, "alice", "0123456789"),   # 2010 chars
    "announcements": (0, "announcements", None, "server", "hi"),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "validation")
os.makedirs(out, exist_ok=True)
for name, args in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(encode(*args))

//! Integration tests: the real server on 127.0.0.1:0, talked to over HTTP
//! and WebSocket, against a fresh SQLite file and a fresh PostgreSQL
//! database per test.

mod helpers;

mod http;
mod maintenance;
mod nojs;
mod ops;
mod page_frames;
mod restore;
mod trust;
mod ws;

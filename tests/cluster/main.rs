//! Several real server processes on one PostgreSQL database: cross-instance
//! fan-out, one broadcaster with takeover, kill -9 of an instance, database
//! outages and a terminated listener. Clients play the load balancer by
//! reconnecting to the other instance.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod support;

mod failover;
mod fanout;
mod ops;
mod presence;
mod trust;

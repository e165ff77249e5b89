//! What makes many instances behind a load balancer one chat: the commit
//! [`feed`] that brings every instance's commits to every hub (in process on
//! SQLite, LISTEN/NOTIFY on PostgreSQL), the [`leader`] election, and the
//! random [`broadcaster`] it runs. The NOTIFY wire format is `crate::wire`.

pub mod broadcaster;
pub mod feed;
pub mod leader;

//! `chat healthcheck`: a tiny HTTP client for the container's HEALTHCHECK,
//! so the runtime image needs no curl. Exits 0 when `/health` answers 200.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// Asks the instance listening on `listen`'s port on this machine.
pub fn run(listen: SocketAddr) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], listen.port()));
    check(addr).unwrap_or(false)
}

fn check(addr: SocketAddr) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.1 200"))
}

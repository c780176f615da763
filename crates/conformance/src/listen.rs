//! Binding the service's port on the loopback interface.

use std::net::{Ipv4Addr, SocketAddr};

/// Binds 127.0.0.1:`port`, with an error that says what to do about a busy port.
pub async fn bind(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tokio::net::TcpListener::bind(address).await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("{address} is already in use: stop what listens there or pass another --port")
        } else {
            anyhow::anyhow!("cannot listen on {address}: {err}")
        }
    })
}

//! A network namespace of the test's own, joined to this host by a veth
//! pair with addresses of its own: a peer that is not loopback, on a machine
//! that reaches no other host. Removed when dropped, also when a test fails.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct Namespace {
    name: String,
    host_link: String,
    /// This host's end of the pair.
    pub host_addr: Ipv4Addr,
    /// The namespace's end: the peer lineage sees.
    pub peer_addr: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

impl Namespace {
    /// Names and a /30 in 10.0.0.0/8 from the process id and a counter, so
    /// that parallel runs do not collide. The error says why none could be
    /// made (not root, no `ip`): a test must fail on it, never pass.
    pub fn create() -> Result<Namespace, String> {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("making a network namespace needs root (CAP_NET_ADMIN); run this test as root".to_owned());
        }
        let subnet = ((pid << 2 | (n & 3)) & 0x3f_ffff) << 2;
        let base = u32::from(Ipv4Addr::new(10, 0, 0, 0)) | subnet;
        let namespace = Namespace {
            name: format!("lineage-{pid}-{n}"),
            host_link: format!("lh{pid}n{n}"),
            host_addr: Ipv4Addr::from(base + 1),
            peer_addr: Ipv4Addr::from(base + 2),
        };
        // From here on, dropping `namespace` removes whatever was made.
        let peer_link = format!("lp{pid}n{n}");
        let (host, peer) = (format!("{}/30", namespace.host_addr), format!("{}/30", namespace.peer_addr));
        let name = namespace.name.as_str();
        ip(&["netns", "add", name])?;
        ip(&["link", "add", &namespace.host_link, "type", "veth", "peer", "name", &peer_link])?;
        ip(&["link", "set", &peer_link, "netns", name])?;
        ip(&["addr", "add", &host, "dev", &namespace.host_link])?;
        ip(&["link", "set", &namespace.host_link, "up"])?;
        ip(&["netns", "exec", name, "ip", "addr", "add", &peer, "dev", &peer_link])?;
        ip(&["netns", "exec", name, "ip", "link", "set", &peer_link, "up"])?;
        Ok(namespace)
    }

    /// Sends `POST path` with `headers` to `to` from inside the namespace
    /// (what `ip netns exec` does: a thread joins the namespace, then
    /// connects); the status and body of the answer.
    pub fn post(&self, to: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
        let netns = std::fs::File::open(format!("/run/netns/{}", self.name))
            .map_err(|e| format!("opening /run/netns/{}: {e}", self.name))?;
        let request = raw_post(to, path, headers);
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: the descriptor is open for the call's duration;
                    // setns moves only this thread, which ends right after.
                    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(format!("setns into {}: {}", self.name, std::io::Error::last_os_error()));
                    }
                    let stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                        .map_err(|e| format!("connecting to {to} from {}: {e}", self.peer_addr))?;
                    exchange(stream, &request)
                })
                .join()
                .map_err(|_| "the namespace's client thread panicked".to_owned())?
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Removing the namespace removes its end of the pair, and with it
        // the pair; the host end goes explicitly in case the move failed.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

/// An HTTP/1.1 POST without a body.
pub fn raw_post(to: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {to}\r\ncontent-length: 0\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request + "\r\n"
}

/// Writes `request`, reads the answer to the end: its status and body.
pub fn exchange(mut stream: TcpStream, request: &str) -> Result<(u16, String), String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending: {e}"))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| format!("reading the answer: {e}"))?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}

/// The same POST from a loopback address (127.0.0.1), to any address of this host.
pub async fn post_from_loopback(to: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(|e| format!("binding 127.0.0.1: {e}"))?;
    let stream = socket.connect(to).await.map_err(|e| format!("connecting to {to}: {e}"))?;
    let stream = stream.into_std().map_err(|e| e.to_string())?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let request = raw_post(to, path, headers);
    tokio::task::spawn_blocking(move || exchange(stream, &request)).await.map_err(|e| e.to_string())?
}

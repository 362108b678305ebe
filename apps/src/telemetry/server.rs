//! The telemetry socket: a unix `SOCK_SEQPACKET` listener on a thread of its own, one thread
//! per client (at most [`MAX_CLIENTS`], as DPDK), each message a command and each reply one
//! message.
//!
//! A socket file left by a process that is gone (nothing accepts a connection on it) is
//! replaced; one a live process answers on is left alone and the start fails.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use socket2::{Domain, SockAddr, Socket, Type};

use super::{Telemetry, TelemetryError, info};

/// Clients served at once; more are closed on accept (DPDK's `MAX_CONNECTIONS`).
pub const MAX_CLIENTS: usize = 10;
/// Longest request read, in bytes (DPDK reads 1023).
const MAX_REQUEST: usize = 1024;

/// The running socket; dropping it stops the listener and removes the socket file.
#[derive(Debug)]
pub struct TelemetryServer {
    path: PathBuf,
    ino: u64,
    stop: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
}

fn seqpacket() -> std::io::Result<Socket> {
    Socket::new(Domain::UNIX, Type::SEQPACKET, None)
}

/// Whether a process may still own the socket at `path`: only a refused connection (nothing
/// listens) or a vanished file says it is stale; any other answer (accepted, or a socket
/// of another type that someone listens on) leaves it alone.
fn live(path: &Path) -> bool {
    let Ok(addr) = SockAddr::unix(path) else {
        return true;
    };
    match seqpacket().and_then(|s| s.connect(&addr)) {
        Ok(()) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound),
    }
}

impl TelemetryServer {
    /// Serves `telemetry` on a socket at `path`, creating its directory (mode 0700, as DPDK's
    /// runtime directory) if needed.
    pub fn start(telemetry: Telemetry, path: &Path) -> Result<Self, TelemetryError> {
        let err = |what, source| TelemetryError::Socket {
            path: path.to_path_buf(),
            what,
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| err("cannot create its directory", e))?;
        }
        let addr = SockAddr::unix(path).map_err(|e| err("not a socket path (too long?)", e))?;
        match std::fs::symlink_metadata(path) {
            Ok(m) if !m.file_type().is_socket() => {
                return Err(TelemetryError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) if live(path) => {
                return Err(TelemetryError::InUse {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => {
                std::fs::remove_file(path).map_err(|e| err("cannot remove the stale socket", e))?
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(err("cannot look at the path", e)),
        }
        let sock = seqpacket().map_err(|e| err("cannot create a socket", e))?;
        sock.bind(&addr).map_err(|e| err("cannot bind", e))?;
        let ino = std::fs::metadata(path)
            .map_err(|e| err("cannot look at the path", e))?
            .ino();
        sock.listen(MAX_CLIENTS as i32)
            .map_err(|e| err("cannot listen", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let listener = std::thread::Builder::new()
            .name("telemetry".into())
            .spawn(move || listen(sock, telemetry, &flag))
            .map_err(|e| err("cannot start its thread", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            ino,
            stop,
            listener: Some(listener),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TelemetryServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept; it sees the flag and returns.
        let _ = SockAddr::unix(&self.path).map(|a| seqpacket().map(|s| s.connect(&a)));
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        // Remove the file only if it is still ours (not a successor's).
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn listen(sock: Socket, telemetry: Telemetry, stop: &AtomicBool) {
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = sock.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok((conn, _)) = accepted else {
            // EINTR, ECONNABORTED, EMFILE: go on (EMFILE after a pause, not a spin).
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        };
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            continue; // dropped: closed
        }
        let (t, n) = (telemetry.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("telemetry-client".into())
            .spawn(move || {
                serve(conn, &t);
                n.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One client: the info message, then a reply per request until it closes.
fn serve(mut conn: Socket, telemetry: &Telemetry) {
    if conn.write_all(info().to_string().as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; MAX_REQUEST];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let reply = match std::str::from_utf8(&buf[..n]) {
            Ok(req) => telemetry.handle(req),
            Err(_) => r#"{"none":null}"#.to_string(),
        };
        if conn.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(path: &Path) -> Socket {
        let s = seqpacket().unwrap();
        s.connect(&SockAddr::unix(path).unwrap()).unwrap();
        s
    }

    fn recv(s: &mut Socket) -> String {
        let mut buf = vec![0u8; super::super::MAX_OUTPUT_LEN];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn serves_stale_is_replaced_live_is_kept() {
        let dir = std::env::temp_dir().join(format!("sluice-tel-{}", std::process::id()));
        let path = dir.join("sub").join("dpdk_telemetry.v2");
        // A stale socket: bound, then its owner gone.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let stale = seqpacket().unwrap();
        stale.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        drop(stale);
        assert!(path.exists());
        let server = TelemetryServer::start(Telemetry::new(), &path).unwrap();
        let mut c = client(&path);
        assert!(recv(&mut c).contains("\"max_output_len\":16384"));
        c.write_all(b"/").unwrap();
        assert_eq!(recv(&mut c), r#"{"/":["/","/help","/info"]}"#);
        // A live one is not stolen.
        let e = TelemetryServer::start(Telemetry::new(), &path).unwrap_err();
        assert!(matches!(e, TelemetryError::InUse { .. }), "{e}");
        drop(server);
        assert!(!path.exists(), "the socket file is removed on stop");
        // Not a socket: left alone.
        std::fs::write(&path, b"x").unwrap();
        let e = TelemetryServer::start(Telemetry::new(), &path).unwrap_err();
        assert!(matches!(e, TelemetryError::NotASocket { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

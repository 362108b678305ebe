//! The control thread: the socket, one frontend connection at a time, its messages.
//!
//! The socket: a path that holds a socket nobody accepts on (left by a process that died) is
//! removed and bound again; one that a live process accepts on is an error
//! ([`BackendError::InUse`]), as is a path that is not a socket. The socket is made with the
//! process's umask; who may connect is set by the directory's and the socket's permissions
//! (`chmod`/`chown` after start, or a directory only the VM's user can reach).
//!
//! A connection is served until the frontend closes it or breaks the protocol (a malformed,
//! truncated or oversized message, an unknown request, file descriptors where none belong):
//! then every ring is forgotten (the port's link goes down, the memory table is unmapped when
//! the lcores let go of it) and the next frontend is accepted on the same socket. A refused
//! request (a ring that does not exist, ring addresses outside the memory table) is answered
//! with a failure and the connection kept. The thread waits in `epoll` on the socket and a
//! stop eventfd; dropping the port wakes it, shuts the connection down (a frontend stalled in
//! the middle of a message cannot hold it) and joins it.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vhost::vhost_user::{BackendReqHandler, Error as ProtocolError};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::error::BackendError;
use super::handler::Device;
use super::vring::{ControlCounters, Shared};

/// Binds `path`, replacing a stale socket.
pub(crate) fn listen(path: &Path) -> Result<UnixListener, BackendError> {
    let err = |source| BackendError::Listen {
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(md) if !md.file_type().is_socket() => {
            return Err(BackendError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(BackendError::InUse {
                    path: path.to_path_buf(),
                });
            }
            // Nobody accepts on it: left by a process that is gone.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path).map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    UnixListener::bind(path).map_err(err)
}

/// The running control thread of a port.
pub(crate) struct Control {
    path: PathBuf,
    stop: EventFd,
    conn: Arc<Mutex<Option<UnixStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Control {
    /// Starts serving `listener` for the rings in `shared`.
    pub(crate) fn start(
        port: &str,
        path: &Path,
        listener: UnixListener,
        shared: Arc<Shared>,
    ) -> Result<Self, BackendError> {
        let thread_err = |source| BackendError::Thread {
            port: port.to_string(),
            source,
        };
        let stop = EventFd::new(EFD_NONBLOCK).map_err(thread_err)?;
        let conn = Arc::new(Mutex::new(None));
        let serve = Server {
            port: port.to_string(),
            listener,
            shared,
            stop: stop.try_clone().map_err(thread_err)?,
            conn: conn.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("vhost-{port}"))
            .spawn(move || serve.run())
            .map_err(thread_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            stop,
            conn,
            thread: Some(thread),
        })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(c) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

struct Server {
    port: String,
    listener: UnixListener,
    shared: Arc<Shared>,
    stop: EventFd,
    conn: Arc<Mutex<Option<UnixStream>>>,
}

/// What woke the thread.
enum Wake {
    Ready,
    Stop,
}

impl Server {
    fn run(self) {
        loop {
            match self.wait(self.listener.as_raw_fd()) {
                Ok(Wake::Ready) => {}
                Ok(Wake::Stop) | Err(_) => return,
            }
            let Ok((stream, _)) = self.listener.accept() else {
                continue;
            };
            if let Wake::Stop = self.serve(stream) {
                return;
            }
        }
    }

    /// Waits until `fd` is readable or the port stops.
    fn wait(&self, fd: i32) -> io::Result<Wake> {
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            self.stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, 0),
        )?;
        epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, 1))?;
        let mut events = [EpollEvent::default(); 2];
        loop {
            match epoll.wait(-1, &mut events) {
                Ok(n) if events[..n].iter().any(|e| e.data() == 0) => return Ok(Wake::Stop),
                Ok(0) => continue,
                Ok(_) => return Ok(Wake::Ready),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Serves one connection to its end.
    fn serve(&self, stream: UnixStream) -> Wake {
        let counters = &self.shared.counters;
        ControlCounters::bump(&counters.connections);
        let fd = stream.as_raw_fd();
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = stream.try_clone().ok();
        self.shared.connected.store(true, Ordering::Release);
        eprintln!(
            "sluice: vhost-user port {}: a frontend connected",
            self.port
        );
        let device = Arc::new(Mutex::new(Device::new(self.shared.clone())));
        let mut handler = BackendReqHandler::from_stream(stream, device);
        let wake = loop {
            match self.wait(fd) {
                Ok(Wake::Ready) => {}
                Ok(Wake::Stop) => break Wake::Stop,
                Err(_) => break Wake::Ready,
            }
            match handler.handle_request() {
                Ok(()) => {}
                // Refused (counted by the handler), answered: the connection goes on.
                Err(ProtocolError::ReqHandlerError(e)) => {
                    eprintln!(
                        "sluice: vhost-user port {}: request refused: {e}",
                        self.port
                    );
                }
                // A well-formed request before the feature it needs was acknowledged: QEMU
                // sends SET_VRING_ENABLE before SET_FEATURES (and again after starting the
                // rings). Ignored, counted, the connection kept.
                Err(ProtocolError::InactiveFeature(f)) => {
                    ControlCounters::bump(&counters.refused);
                    eprintln!(
                        "sluice: vhost-user port {}: request ignored: it came before feature \
                         {:#x} was acknowledged",
                        self.port,
                        f.bits()
                    );
                }
                Err(e @ ProtocolError::InactiveOperation(_)) => {
                    ControlCounters::bump(&counters.refused);
                    eprintln!(
                        "sluice: vhost-user port {}: request ignored: {e}",
                        self.port
                    );
                }
                Err(ProtocolError::Disconnected) => break Wake::Ready,
                Err(e) => {
                    ControlCounters::bump(&counters.bad_messages);
                    eprintln!(
                        "sluice: vhost-user port {}: closing the connection: {e}",
                        self.port
                    );
                    break Wake::Ready;
                }
            }
        };
        // Everything is forgotten before the socket closes (`conn` holds it open): a frontend
        // that sees the end of the connection finds the port down; and the handler (its
        // memory table) goes before `connected` says so: whoever sees the port disconnected
        // finds the frontend's memory unmapped.
        self.shared.reset_all();
        drop(handler);
        self.shared.connected.store(false, Ordering::Release);
        ControlCounters::bump(&counters.disconnects);
        eprintln!(
            "sluice: vhost-user port {}: the frontend is gone, port down",
            self.port
        );
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
        wake
    }
}

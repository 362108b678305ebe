//! An in-process vhost-user net backend for tests, on rust-vmm's `vhost-user-backend`: the
//! vhost-user protocol, the memory table and the rings' set-up are that crate's; split rings
//! are walked by its `virtio-queue`, packed ones by a small walker of its own (`rings`).
//!
//! [`TestNetBackend::listen`] binds a unix socket and serves one frontend connection on a
//! thread. The device moves every frame the driver transmits on a queue pair's transmit ring
//! to a receive ring ([`Forward`]): the same pair's (echo) or the next pair's. Frames wait in
//! the device while no receive buffer is posted. Knobs: [`TestNetBackend::disconnect`] closes
//! the connection as a killed backend would; [`TestNetBackend::lie`] makes the next receive
//! used entry carry a bad id or length.

mod rings;

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use vhost::vhost_user::{
    Error as ProtocolError, Listener, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use virtio_queue::QueueT;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::virtio::{NET_HDR_LEN, feature};
use rings::{Chain, Mem, Packed};

/// Frames the device holds for a receive ring before it drops new ones.
const HELD_FRAMES: usize = 4096;

/// Where a transmitted frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Back to the receive ring of the same queue pair.
    Echo,
    /// To the receive ring of the next queue pair (the last pair's to the first's).
    NextPair,
}

/// A lie the device tells in its next receive used entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// An id beyond the ring (the ring size plus 3).
    BadId,
    /// A length 1000 bytes beyond the buffer posted.
    BadLen,
}

/// How the test backend presents itself.
#[derive(Clone, Debug)]
pub struct NetBackendConfig {
    /// Queue pairs (rings `2p` receive, `2p + 1` transmit).
    pub queue_pairs: u16,
    /// Largest ring size it accepts.
    pub max_queue_size: u16,
    /// Virtio features offered (`PROTOCOL_FEATURES`, bit 30, is added).
    pub features: u64,
    /// Protocol features offered.
    pub protocol: VhostUserProtocolFeatures,
    /// Where frames go.
    pub forward: Forward,
}

impl Default for NetBackendConfig {
    /// Two queue pairs, rings up to 1024, VERSION_1, MRG_RXBUF, EVENT_IDX, MQ and
    /// RING_PACKED; REPLY_ACK, MQ and CONFIGURE_MEM_SLOTS; echo.
    fn default() -> Self {
        Self {
            queue_pairs: 2,
            max_queue_size: 1024,
            features: feature::VERSION_1
                | feature::MRG_RXBUF
                | feature::EVENT_IDX
                | feature::MQ
                | feature::RING_PACKED,
            protocol: VhostUserProtocolFeatures::REPLY_ACK
                | VhostUserProtocolFeatures::MQ
                | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS,
            forward: Forward::Echo,
        }
    }
}

/// What the device has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Frames taken from transmit rings.
    pub tx_frames: u64,
    /// Frames written to receive rings (lies included).
    pub rx_frames: u64,
    /// Frames dropped: too large for the receive buffer, or beyond the 4096 frames it holds per receive ring.
    pub dropped: u64,
    /// Lies told.
    pub lies: u64,
    /// Memory tables received (`SET_MEM_TABLE` or `ADD_MEM_REG`).
    pub mem_updates: u64,
}

#[derive(Default)]
struct State {
    mem: Option<GuestMemoryAtomic<Mem>>,
    acked: u64,
    /// Per ring, once started when RING_PACKED is in force.
    packed: Vec<Option<Packed>>,
    /// Per queue pair, frames waiting for a receive buffer.
    held: Vec<VecDeque<Vec<u8>>>,
    lie: Option<Lie>,
    stats: BackendStats,
    error: Option<String>,
}

/// The device: what `vhost-user-backend` calls into.
struct NetDevice {
    cfg: NetBackendConfig,
    state: Mutex<State>,
    progress: Condvar,
}

impl NetDevice {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn packed(&self, st: &State) -> bool {
        st.acked & feature::RING_PACKED != 0
    }
}

fn ready(vring: &VringRwLock) -> bool {
    let g = vring.get_ref();
    g.get_queue().ready() && g.is_enabled()
}

/// One ring as the pump sees it.
struct Ring<'a> {
    vring: &'a VringRwLock,
    packed: Option<&'a mut Packed>,
}

impl Ring<'_> {
    fn pop(&mut self, mem: &Mem) -> Result<Option<Chain>, String> {
        match &mut self.packed {
            Some(p) => p.pop(mem),
            None => Ok(rings::split_pop(self.vring, mem)),
        }
    }

    fn used(&mut self, mem: &Mem, chain: &Chain, id: u32, len: u32) -> Result<(), String> {
        match &mut self.packed {
            Some(p) => p.push_used(mem, id as u16, len, chain.descs),
            None if id == u32::from(chain.id) => rings::split_used(self.vring, chain.id, len),
            None => rings::split_used_raw(self.vring, mem, id, len),
        }
    }

    fn signal(&mut self, mem: &Mem) {
        let wants = match &self.packed {
            Some(p) => p.wants_call(mem),
            None => self.vring.needs_notification().unwrap_or(true),
        };
        if wants {
            let _ = self.vring.signal_used_queue();
        }
    }

    fn size(&self) -> u16 {
        self.vring.get_ref().get_queue().size()
    }
}

impl NetDevice {
    /// Moves every frame it can, until the rings have nothing more for it.
    fn pump(&self, st: &mut State, vrings: &[VringRwLock]) -> Result<(), String> {
        let Some(atomic) = st.mem.clone() else {
            return Ok(());
        };
        let guard = atomic.memory();
        let mem: &Mem = &guard;
        let packed = self.packed(st);
        let pairs = usize::from(self.cfg.queue_pairs);
        if st.packed.len() < vrings.len() {
            st.packed.resize(vrings.len(), None);
        }
        st.held.resize_with(pairs, VecDeque::new);
        for (r, vring) in vrings.iter().enumerate() {
            if packed && st.packed[r].is_none() && ready(vring) {
                st.packed[r] = Some(Packed::from_vring(vring));
            }
            if !packed && ready(vring) {
                let _ = vring.disable_notification();
            }
        }
        // Bounded: each round moves at least one chain or stops.
        for _ in 0..1_000_000 {
            let moved = self.transmit(st, vrings, mem)? + self.receive(st, vrings, mem)?;
            let mut more = false;
            if !packed {
                for (r, vring) in vrings.iter().enumerate().filter(|(_, v)| ready(v)) {
                    // A transmit ring with new chains, or a receive ring with new buffers
                    // while frames wait, needs another round; otherwise wait for a kick.
                    let fresh = vring.enable_notification().unwrap_or(false);
                    more |= fresh && (r % 2 == 1 || !st.held[r / 2].is_empty());
                }
            }
            if moved == 0 && !more {
                break;
            }
        }
        for (r, vring) in vrings.iter().enumerate() {
            if let Some(p) = &st.packed[r] {
                vring.set_queue_next_avail(p.base());
            }
        }
        Ok(())
    }

    fn ring<'a>(st: &'a mut State, vrings: &'a [VringRwLock], r: usize) -> Ring<'a> {
        Ring {
            vring: &vrings[r],
            packed: st.packed[r].as_mut(),
        }
    }

    fn transmit(&self, st: &mut State, vrings: &[VringRwLock], mem: &Mem) -> Result<u64, String> {
        let pairs = usize::from(self.cfg.queue_pairs);
        let mut moved = 0;
        for p in 0..pairs {
            let tx = 2 * p + 1;
            if tx >= vrings.len() || !ready(&vrings[tx]) {
                continue;
            }
            let mut frames = Vec::new();
            {
                let mut ring = Self::ring(st, vrings, tx);
                while let Some(chain) = ring.pop(mem)? {
                    let bytes = chain.read(mem)?;
                    ring.used(mem, &chain, u32::from(chain.id), 0)?;
                    frames.push(bytes.get(NET_HDR_LEN..).unwrap_or_default().to_vec());
                }
                if !frames.is_empty() {
                    ring.signal(mem);
                }
            }
            let to = match self.cfg.forward {
                Forward::Echo => p,
                Forward::NextPair => (p + 1) % pairs,
            };
            for frame in frames {
                moved += 1;
                st.stats.tx_frames += 1;
                if st.held[to].len() < HELD_FRAMES {
                    st.held[to].push_back(frame);
                } else {
                    st.stats.dropped += 1;
                }
            }
        }
        Ok(moved)
    }

    fn receive(&self, st: &mut State, vrings: &[VringRwLock], mem: &Mem) -> Result<u64, String> {
        let mut moved = 0;
        for p in 0..usize::from(self.cfg.queue_pairs) {
            let rx = 2 * p;
            if rx >= vrings.len() || !ready(&vrings[rx]) || st.held[p].is_empty() {
                continue;
            }
            let mut held = std::mem::take(&mut st.held[p]);
            let (mut lie, mut stats) = (st.lie, st.stats);
            let mut ring = Self::ring(st, vrings, rx);
            let size = ring.size();
            let mut used_any = false;
            while !held.is_empty() {
                let Some(chain) = ring.pop(mem)? else {
                    break;
                };
                let frame = held.pop_front().unwrap_or_default();
                // virtio_net_hdr_v1 (virtio 1.2 §5.1.6): no offloads, num_buffers = 1.
                let mut bytes = vec![0u8; NET_HDR_LEN];
                bytes[10..12].copy_from_slice(&1u16.to_le_bytes());
                bytes.extend_from_slice(&frame);
                let (mut id, mut len) = (u32::from(chain.id), bytes.len() as u32);
                if !chain.write(mem, &bytes)? {
                    stats.dropped += 1;
                    len = 0;
                } else {
                    stats.rx_frames += 1;
                }
                match lie.take() {
                    Some(Lie::BadId) => id = u32::from(size) + 3,
                    Some(Lie::BadLen) => len = chain.writable() + 1000,
                    None => {}
                }
                if id != u32::from(chain.id) || len > chain.writable() {
                    stats.lies += 1;
                }
                ring.used(mem, &chain, id, len)?;
                used_any = true;
                moved += 1;
            }
            if used_any {
                ring.signal(mem);
            }
            st.held[p] = held;
            (st.lie, st.stats) = (lie, stats);
        }
        Ok(moved)
    }
}

impl VhostUserBackend for NetDevice {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        2 * usize::from(self.cfg.queue_pairs)
    }

    fn max_queue_size(&self) -> usize {
        usize::from(self.cfg.max_queue_size)
    }

    fn features(&self) -> u64 {
        self.cfg.features | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, features: u64) {
        self.state().acked = features;
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        self.cfg.protocol
    }

    fn set_event_idx(&self, _enabled: bool) {
        // virtio-queue's split queue does the event index itself; the packed walker asks the
        // driver's flags only.
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<Mem>) -> io::Result<()> {
        let mut st = self.state();
        st.mem = Some(mem);
        st.stats.mem_updates += 1;
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC).ok()
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        let mut st = self.state();
        let r = queue_index as usize;
        if let Some(p) = st.packed.get_mut(r) {
            *p = None;
        }
        if r.is_multiple_of(2)
            && let Some(h) = st.held.get_mut(r / 2)
        {
            h.clear();
        }
        Ok(())
    }

    fn handle_event(
        &self,
        _device_event: u16,
        _evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        let mut st = self.state();
        if let Err(e) = self.pump(&mut st, vrings) {
            st.error.get_or_insert(e);
        }
        drop(st);
        self.progress.notify_all();
        Ok(())
    }
}

/// A test backend serving one connection on its socket; see the [module docs](self).
pub struct TestNetBackend {
    device: Arc<NetDevice>,
    path: PathBuf,
    conn: Mutex<Receiver<Option<vhost_user_backend::ShutdownHandle>>>,
    shutdown: OnceLock<Option<vhost_user_backend::ShutdownHandle>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestNetBackend {
    /// Binds `path` (replacing a stale socket file) and serves the first frontend that
    /// connects, on a thread of its own.
    ///
    /// # Errors
    /// The socket cannot be bound, or the daemon cannot start its worker.
    pub fn listen(path: impl AsRef<Path>, cfg: NetBackendConfig) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let device = Arc::new(NetDevice {
            cfg,
            state: Mutex::new(State::default()),
            progress: Condvar::new(),
        });
        let mut listener = Listener::new(&path, true).map_err(io::Error::other)?;
        let mut daemon = VhostUserDaemon::new(
            format!("vhost-test-{}", path.display()),
            device.clone(),
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("vhost-test".into())
            .spawn(move || {
                let started = daemon.start(&mut listener);
                let _ = tx.send(daemon.shutdown_handle());
                let served = started.and_then(|()| daemon.wait());
                for h in daemon.get_epoll_handlers() {
                    h.send_exit_event();
                }
                match served {
                    Ok(())
                    | Err(vhost_user_backend::Error::HandleRequest(
                        ProtocolError::Disconnected | ProtocolError::PartialMessage,
                    )) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            })?;
        Ok(Self {
            device,
            path,
            conn: Mutex::new(rx),
            shutdown: OnceLock::new(),
            thread: Some(thread),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection's shutdown handle, waiting for the connection when `wait`.
    fn connection(&self, wait: bool) -> Option<&vhost_user_backend::ShutdownHandle> {
        if self.shutdown.get().is_none() {
            let rx = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            let got = if wait {
                rx.recv().ok()
            } else {
                match rx.try_recv() {
                    Ok(h) => Some(h),
                    Err(TryRecvError::Disconnected) => Some(None),
                    Err(TryRecvError::Empty) => None,
                }
            };
            if let Some(h) = got {
                let _ = self.shutdown.set(h);
            }
        }
        self.shutdown.get().and_then(Option::as_ref)
    }

    /// Closes the connection, as a backend that is killed does: the frontend's next message
    /// finds it gone. Waits for a frontend to have connected first.
    pub fn disconnect(&self) {
        if let Some(h) = self.connection(true) {
            h.shutdown();
        }
    }

    /// Makes the next receive used entry lie.
    pub fn lie(&self, lie: Lie) {
        self.device.state().lie = Some(lie);
    }

    /// The virtio features the frontend acknowledged.
    pub fn acked_features(&self) -> u64 {
        self.device.state().acked
    }

    /// What the device has done so far.
    pub fn stats(&self) -> BackendStats {
        self.device.state().stats
    }

    /// The first error the device met walking the rings (a driver bug), if any.
    pub fn error(&self) -> Option<String> {
        self.device.state().error.clone()
    }

    /// Waits until `done` holds for the stats, or `limit` passes (a safety net against a hang,
    /// not a timing assumption), and returns them.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&BackendStats) -> bool) -> BackendStats {
        let st = self.device.state();
        let (st, _) = self
            .device
            .progress
            .wait_timeout_while(st, limit, |st| !done(&st.stats) && st.error.is_none())
            .unwrap_or_else(|e| e.into_inner());
        st.stats
    }

    /// Waits for the connection to end (the frontend closed it, or [`disconnect`]) and
    /// returns how serving it ended.
    ///
    /// [`disconnect`]: Self::disconnect
    pub fn join(mut self) -> Result<(), String> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("backend thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for TestNetBackend {
    fn drop(&mut self) {
        // Only a thread that has a connection can be ended; one still waiting to accept is
        // left to the process's exit.
        if let Some(h) = self.connection(false) {
            h.shutdown();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

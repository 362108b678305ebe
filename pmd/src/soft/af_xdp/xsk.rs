//! One AF_XDP socket per queue: creation, UMEM registration or sharing, ring setup, bind,
//! and the socket object that outlives both queue handles.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::XdpMode;
use super::prog::XdpProgram;
use super::ring::{ConsRing, ProdRing};
use super::rx::AfXdpRxQueue;
use super::sys::{self, RingMap};
use super::tx::AfXdpTxQueue;
use super::umem::{ChunkTable, Umem};
use crate::net::QueueCounters;
use crate::soft::af_xdp::AfXdpError;

/// How long bind retries a busy queue before reporting it busy.
const BIND_BUSY_WAIT: Duration = Duration::from_secs(2);

/// A bound socket, shared by its queue's RX and TX handles and the port.
///
/// Buffers the kernel may still touch (posted on FILL, in flight on TX) are parked here by
/// the queue handles when they drop, and go back to their pool only after the socket is
/// closed: the fields drop in order, `fd` first.
pub(super) struct Xsk {
    fd: Arc<OwnedFd>,
    parked: Mutex<Vec<ChunkTable>>,
    umem: Arc<Umem>,
    zero_copy: bool,
    // Last: the XSKMAP entry goes with the socket; the program may detach after it.
    // (`None` only in tests that play the kernel.)
    _prog: Option<Arc<XdpProgram>>,
}

impl Xsk {
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub(super) fn umem(&self) -> &Arc<Umem> {
        &self.umem
    }

    pub(super) fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// A socket object around any descriptor, with no program, for tests that play the
    /// kernel on the rings.
    #[cfg(any(test, feature = "test-utils"))]
    pub(super) fn fake(fd: OwnedFd, umem: Arc<Umem>) -> Self {
        Self {
            fd: Arc::new(fd),
            parked: Mutex::new(Vec::new()),
            umem,
            zero_copy: false,
            _prog: None,
        }
    }

    /// Keeps `table`'s buffers until the socket closes.
    pub(super) fn park(&self, table: ChunkTable) {
        self.parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(table);
    }
}

impl core::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Xsk")
            .field("zero_copy", &self.zero_copy())
            .finish_non_exhaustive()
    }
}

/// What one queue's socket is opened with.
pub(super) struct QueueSetup<'a> {
    pub interface: &'a str,
    pub ifindex: u32,
    pub queue: u16,
    pub port_id: u16,
    pub rx_descs: u32,
    pub tx_descs: u32,
    pub mode: XdpMode,
    pub umem: &'a Arc<Umem>,
    pub prog: &'a Arc<XdpProgram>,
}

impl QueueSetup<'_> {
    /// The FILL ring holds twice the RX ring (as DPDK's `net_af_xdp` sizes it): with the
    /// RX ring full, as many buffers again wait for frames, so a forwarder that falls
    /// behind for a moment finds buffers posted rather than the kernel dropping frames
    /// for an empty FILL ring.
    fn fill_descs(&self) -> u32 {
        self.rx_descs * 2
    }

    fn fail(&self, step: &'static str) -> impl FnOnce(std::io::Error) -> AfXdpError + '_ {
        move |source| AfXdpError::Setup {
            interface: self.interface.to_string(),
            queue: u32::from(self.queue),
            step,
            source,
        }
    }

    /// Opens, binds and steers the socket; returns the socket and its two queue handles.
    pub(super) fn open(
        &self,
        rx_counters: Arc<QueueCounters>,
        tx_counters: Arc<QueueCounters>,
    ) -> Result<(Arc<Xsk>, AfXdpRxQueue, AfXdpTxQueue), AfXdpError> {
        let queue = u32::from(self.queue);
        let fd = sys::xsk_socket().map_err(|source| match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => AfXdpError::Permission {
                interface: self.interface.to_string(),
                step: "open an AF_XDP socket",
                needs: "CAP_NET_RAW",
                source,
            },
            _ => self.fail("open an AF_XDP socket (is CONFIG_XDP_SOCKETS set?)")(source),
        })?;

        // Share a live registration of the UMEM, or register it on this socket.
        let shared = self.umem.live_socket();
        if shared.is_none() {
            let region = self.umem.pool().region();
            sys::umem_reg(&fd, region.as_ptr(), region.len(), self.umem.chunk(), 0).map_err(
                |source| match source.raw_os_error() {
                    Some(libc::ENOBUFS | libc::ENOMEM | libc::EPERM) => AfXdpError::Memlock {
                        interface: self.interface.to_string(),
                        bytes: region.len(),
                        source,
                    },
                    _ => self.fail("register the UMEM")(source),
                },
            )?;
        }
        // Each socket has its own FILL and COMPLETION rings: sockets on other queues or
        // devices that share a UMEM must (af_xdp.rst "XDP_SHARED_UMEM bind flag").
        for (opt, n) in [
            (libc::XDP_UMEM_FILL_RING, self.fill_descs()),
            (libc::XDP_UMEM_COMPLETION_RING, self.tx_descs),
            (libc::XDP_RX_RING, self.rx_descs),
            (libc::XDP_TX_RING, self.tx_descs),
        ] {
            sys::set_ring_size(&fd, opt, n).map_err(self.fail("size the XDP rings"))?;
        }
        let off = sys::mmap_offsets(&fd).map_err(self.fail("read the ring offsets"))?;
        let map_err = self.fail("map the XDP rings");
        let maps = (|| {
            Ok::<_, std::io::Error>((
                RingMap::<u64>::map(
                    &fd,
                    libc::XDP_UMEM_PGOFF_FILL_RING,
                    &off.fr,
                    self.fill_descs(),
                )?,
                RingMap::<u64>::map(
                    &fd,
                    libc::XDP_UMEM_PGOFF_COMPLETION_RING,
                    &off.cr,
                    self.tx_descs,
                )?,
                RingMap::map(&fd, libc::XDP_PGOFF_RX_RING as u64, &off.rx, self.rx_descs)?,
                RingMap::map(&fd, libc::XDP_PGOFF_TX_RING as u64, &off.tx, self.tx_descs)?,
            ))
        })()
        .map_err(map_err)?;
        let mut fill = ProdRing::new(maps.0);
        let comp = ConsRing::new(maps.1);
        let rx = ConsRing::new(maps.2);
        let tx = ProdRing::new(maps.3);

        // af_xdp.rst: fill the FILL ring before bind so that the first frames find buffers.
        let geo = self.umem.geometry();
        let mut rx_table = ChunkTable::new(geo);
        AfXdpRxQueue::prime(&mut fill, &mut rx_table, self.umem.pool(), &rx_counters);

        let flags = match (&shared, self.mode) {
            // The mode and need-wakeup come with the shared registration.
            (Some(_), _) => libc::XDP_SHARED_UMEM,
            (None, XdpMode::Copy) => libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP,
            (None, XdpMode::ZeroCopy) => libc::XDP_ZEROCOPY | libc::XDP_USE_NEED_WAKEUP,
            // Neither flag: the kernel tries zero-copy and falls back to copy.
            (None, XdpMode::Auto) => libc::XDP_USE_NEED_WAKEUP,
        };
        let zc_unsupported = |source| AfXdpError::ZeroCopyUnsupported {
            interface: self.interface.to_string(),
            queue,
            source,
        };
        // A socket closed a moment ago (by this process or one that just died) releases
        // its queue from a kernel work item: EBUSY for a few milliseconds. Retry, bounded.
        let deadline = Instant::now() + BIND_BUSY_WAIT;
        let bound = loop {
            match sys::bind(&fd, self.ifindex, queue, flags, shared.as_deref()) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => break r,
            }
        };
        bound.map_err(|source| match source.raw_os_error() {
            Some(libc::EOPNOTSUPP) if self.mode == XdpMode::ZeroCopy => zc_unsupported(source),
            Some(libc::EBUSY) => AfXdpError::QueueBusy {
                interface: self.interface.to_string(),
                queue,
                source,
            },
            _ => self.fail("bind the AF_XDP socket")(source),
        })?;
        let zero_copy = sys::is_zero_copy(&fd).map_err(self.fail("read the socket's mode"))?;
        if self.mode == XdpMode::ZeroCopy && !zero_copy {
            // Only possible when sharing a copy-mode registration.
            return Err(zc_unsupported(std::io::Error::from_raw_os_error(
                libc::EOPNOTSUPP,
            )));
        }
        self.prog
            .set_socket(queue, &fd)
            .map_err(self.fail("put the socket in the XSKMAP"))?;

        let fd = Arc::new(fd);
        self.umem.add_socket(&fd);
        let xsk = Arc::new(Xsk {
            fd,
            parked: Mutex::new(Vec::new()),
            umem: self.umem.clone(),
            zero_copy,
            _prog: Some(self.prog.clone()),
        });
        let rxq = AfXdpRxQueue::new(
            xsk.clone(),
            fill,
            rx,
            rx_table,
            rx_counters,
            self.port_id,
            self.queue,
        );
        let txq = AfXdpTxQueue::new(
            xsk.clone(),
            tx,
            comp,
            ChunkTable::new(geo),
            tx_counters,
            self.queue,
        );
        Ok((xsk, rxq, txq))
    }
}

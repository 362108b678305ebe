//! Kernel test scaffolding: network namespaces with veth pairs that the tests create and
//! remove, and a raw `AF_PACKET` socket to play the far end of a veth.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The EtherType of test frames (IEEE local experimental), so that nothing else matches.
pub const ETHERTYPE: u16 = 0x88b5;

/// Why a kernel test cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "not root (AF_XDP, XDP and netns need CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW)".into(),
        );
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("iproute2's `ip` is not installed".into()),
    }
}

/// Runs `ip` with `args`; the error carries its stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// A network namespace, deleted (with its veths) on drop.
pub struct Netns {
    pub name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// A fresh namespace with loopback up and IPv6 off (no router solicitations or MLD
    /// reports to disturb exact counts).
    pub fn new(tag: &str) -> Result<Self, String> {
        let name = format!(
            "sluice-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        for k in ["all", "default"] {
            let key = format!("net.ipv6.conf.{k}.disable_ipv6=1");
            let _ = Command::new("ip")
                .args(["netns", "exec", &ns.name, "sysctl", "-qw", &key])
                .status();
        }
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NS args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// A veth pair `a`↔`b` in this namespace, both up, with `queues` queues each way.
    pub fn veth(&self, a: &str, b: &str, queues: u32) -> Result<(), String> {
        let q = queues.to_string();
        self.ip(&[
            "link",
            "add",
            a,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ])?;
        self.ip(&["link", "set", a, "up"])?;
        self.ip(&["link", "set", b, "up"])?;
        Ok(())
    }

    /// Runs `f` on a thread that entered this namespace (threads it spawns inherit it).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path).expect("enter the test namespace");
            private_sysfs().expect("mount this namespace's sysfs");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &str) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: `f` is an open namespace file; setns affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the calling thread a mount namespace of its own with the current network
/// namespace's sysfs on `/sys`, as `ip netns exec` does (sysfs shows the network namespace
/// of whoever mounted it).
pub fn private_sysfs() -> io::Result<()> {
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    // SAFETY: unshare of the mount namespace (and with it the fs attributes) affects only
    // this thread; the mounts below use valid C strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(io::Error::last_os_error());
        }
        let none = c("none");
        let root = c("/");
        if libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let sys = c("/sys");
        libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
        let sysfs = c("sysfs");
        if libc::mount(
            sysfs.as_ptr(),
            sys.as_ptr(),
            sysfs.as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The interface's MAC from sysfs (in the caller's namespace).
pub fn mac_of(ifname: &str) -> [u8; 6] {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).unwrap();
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(s.trim().split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap();
    }
    m
}

/// A test frame: `dst`, `src`, [`ETHERTYPE`], then `seq` (big endian) and a payload
/// pattern derived from `seq`, `len` bytes in all (at least 18).
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend((f.len()..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8));
    f
}

/// The sequence number of a test frame, if `f` is one and its payload is intact.
pub fn check_frame(f: &[u8]) -> Option<u32> {
    if f.len() < 18 || f[12..14] != ETHERTYPE.to_be_bytes() {
        return None;
    }
    let seq = u32::from_be_bytes(f[14..18].try_into().ok()?);
    let ok = f[18..]
        .iter()
        .enumerate()
        .all(|(k, &b)| b == ((k + 18) as u32).wrapping_mul(31).wrapping_add(seq) as u8);
    ok.then_some(seq)
}

/// A raw `AF_PACKET` socket on one interface, receiving [`ETHERTYPE`] frames only.
pub struct RawSocket {
    fd: OwnedFd,
}

impl RawSocket {
    /// Opens it on `ifname` (in the calling thread's namespace).
    pub fn open(ifname: &str) -> io::Result<Self> {
        let proto = ETHERTYPE.to_be();
        // SAFETY: plain syscall.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor, owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = ifindex;
        // SAFETY: `sa` is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as u32,
            )
        };
        // Straight to the driver: the frame then takes tx queue `CPU % queues`, which the
        // multi-queue test steers by pinning the sender.
        let one: libc::c_int = 1;
        // SAFETY: an int option.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        let big: libc::c_int = 4 << 20;
        // SAFETY: an int option.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&big as *const libc::c_int).cast(),
                4,
            )
        };
        Ok(Self { fd })
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a live buffer of the length passed.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives one incoming frame, or `None` after the 2 s receive timeout (generous: a loaded machine can deschedule
    /// the forwarder for a while).
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        loop {
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut salen = size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `sa` are live buffers of the sizes passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sa as *mut libc::sockaddr_ll).cast(),
                    &mut salen,
                )
            };
            if n < 0 {
                return None;
            }
            if sa.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            buf.truncate(n as usize);
            return Some(buf);
        }
    }
}

/// Pins the calling thread to `cpu` (the CPU an `AF_PACKET` sender runs on picks the
/// veth queue its frames take). Returns false if that CPU is not available.
pub fn pin_to(cpu: usize) -> bool {
    // SAFETY: all-zero is an empty cpu_set_t; CPU_SET stays within it for cpu < 1024.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 1024 {
            return false;
        }
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Waits up to `limit` for `cond`, polling every millisecond.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

//! Per-packet processing of the forwarder: the frame rewrite a forwarding rule asks for.
//!
//! - [`Rewrite::Io`]: nothing (testpmd's `io` mode, l2fwd with `--no-mac-updating`);
//! - [`Rewrite::MacSwap`]: swap destination and source MAC (testpmd `macswap`), a reflector;
//! - [`Rewrite::L2`]: set destination and source MAC (l2fwd's MAC updating).
//!
//! A frame shorter than an Ethernet header (14 bytes) is left as it is: no driver here
//! delivers one, and dropping would need a compaction pass over every burst for a case that
//! does not occur. The rewrite touches the first 12 bytes only, which are in the buffer's
//! first cache line.

use sluice_pmd::PktBuf;
use sluice_pmd::net::MacAddr;

/// Length of the two MAC addresses at the start of an Ethernet frame.
const MACS: usize = 12;

/// The frame rewrite of one forwarding rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Forward as is.
    Io,
    /// Swap destination and source MAC.
    MacSwap,
    /// Write these destination and source MACs.
    L2 {
        /// The new destination.
        dst: MacAddr,
        /// The new source (the egress port's MAC unless the rule says otherwise).
        src: MacAddr,
    },
}

impl Rewrite {
    /// Applies the rewrite to every frame of a burst.
    #[inline]
    pub fn apply(&self, pkts: &mut [PktBuf]) {
        match *self {
            Rewrite::Io => {}
            Rewrite::MacSwap => {
                for p in pkts {
                    if let Some(h) = p.data_mut().get_mut(..MACS) {
                        let (dst, src) = h.split_at_mut(6);
                        dst.swap_with_slice(src);
                    }
                }
            }
            Rewrite::L2 { dst, src } => {
                let mut macs = [0u8; MACS];
                macs[..6].copy_from_slice(&dst.0);
                macs[6..].copy_from_slice(&src.0);
                for p in pkts {
                    if let Some(h) = p.data_mut().get_mut(..MACS) {
                        h.copy_from_slice(&macs);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_pmd::{IdentityMapper, PktPool, PktPoolConfig};

    use super::*;

    fn frame(pool: &PktPool, bytes: &[u8]) -> PktBuf {
        let mut p = pool.alloc().unwrap();
        p.extend_from_slice(bytes).unwrap();
        p
    }

    #[test]
    fn rewrites_touch_the_macs_only() {
        let mut cfg = PktPoolConfig::new("fwd-test", 8);
        cfg.cache_size = 0;
        cfg.huge_pages = sluice_pmd::mempool::HugePagePolicy::Never;
        let pool = PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap();
        let bytes: Vec<u8> = (0..60).collect();
        let mut pkts = [frame(&pool, &bytes), frame(&pool, &bytes[..5])];

        Rewrite::Io.apply(&mut pkts);
        assert_eq!(pkts[0].data(), &bytes[..]);

        Rewrite::MacSwap.apply(&mut pkts);
        assert_eq!(&pkts[0].data()[..6], &bytes[6..12]);
        assert_eq!(&pkts[0].data()[6..12], &bytes[..6]);
        assert_eq!(&pkts[0].data()[12..], &bytes[12..]);
        assert_eq!(pkts[1].data(), &bytes[..5], "a runt frame is left alone");

        let (dst, src) = (MacAddr([1, 2, 3, 4, 5, 6]), MacAddr::local(9));
        Rewrite::L2 { dst, src }.apply(&mut pkts);
        assert_eq!(&pkts[0].data()[..6], &dst.0);
        assert_eq!(&pkts[0].data()[6..12], &src.0);
        assert_eq!(&pkts[0].data()[12..], &bytes[12..]);
    }
}

//! Sizes that every key accepts on its own but that a driver refuses when the port opens:
//! checked here so that the error names the key instead of surfacing at start-up.

use super::*;

/// The kernel's `XDP_PACKET_HEADROOM` in front of every AF_XDP frame.
const XDP_HEADROOM: u64 = 256;
/// The largest AF_XDP UMEM chunk a port can use (2048 or 4096 bytes, one buffer each).
const MAX_XDP_CHUNK: u64 = 4096;

impl Validator<'_> {
    /// An `af_xdp` port's buffers are UMEM chunks of at most 4096 bytes, of which the kernel
    /// keeps 256 in front of the frame: its mempool's `buffer_size` must fit in the rest.
    pub(super) fn startup_sizes(&self, mempools: &[Mempool], ports: &[Port]) -> Result<()> {
        for (i, pool) in mempools.iter().enumerate() {
            let af_xdp = ports
                .iter()
                .find(|p| p.mempool.0 == i && matches!(p.driver, PortDriver::AfXdp { .. }));
            let max = MAX_XDP_CHUNK - XDP_HEADROOM;
            if let Some(port) = af_xdp
                && u64::from(pool.buffer_size) > max
            {
                return Err(self.err(
                    format_args!("mempools[{i}].buffer_size"),
                    format!(
                        "{} is over {max} for af_xdp port {}: its buffers are UMEM chunks of \
                         at most {MAX_XDP_CHUNK} bytes, {XDP_HEADROOM} of them the kernel's \
                         headroom",
                        pool.buffer_size, port.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

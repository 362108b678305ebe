//! An AF_XDP "kernel" that writes any RX and COMPLETION entries and any index or flags
//! words into the rings it shares with the driver, among well-behaved receives and
//! completions.
//!
//! Invariants: no panic, no UMEM address followed outside the UMEM or to a chunk the
//! driver does not hold, no frame past its buffer, and every buffer back in the pool once
//! the socket is gone.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice_pmd::soft::af_xdp::fake_kernel::FakeKernel;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let ring = 8 << u.int_in_range(0..=2)?;
    let mut k = FakeKernel::new(128, ring).expect("rings and a UMEM");
    let r = (|| -> Result<()> {
        while !u.is_empty() {
            match u.int_in_range(0..=9)? {
                0 => {
                    k.take_fill(u.int_in_range(0..=64)?);
                }
                1 => {
                    k.receive(u.int_in_range(0..=4096)?);
                }
                2 => k.rx_desc(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
                3 => {
                    k.rx_burst();
                }
                4 => {
                    k.tx_burst(u.int_in_range(1..=40)?, u.int_in_range(0..=2048)?);
                }
                5 => {
                    k.take_tx(u.int_in_range(0..=64)?);
                }
                6 => {
                    k.complete();
                }
                7 => k.completion(u.arbitrary()?),
                8 => k.set_word(u.arbitrary()?, u.arbitrary()?),
                _ => k.flush(),
            }
        }
        Ok(())
    })();
    let _ = r;
    let (available, capacity) = k.finish();
    assert_eq!(available, capacity, "buffers lost or doubled");
    Ok(())
}

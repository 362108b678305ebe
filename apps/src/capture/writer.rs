//! The writer thread of a capture: drains the side rings of one file into pcapng blocks.
//!
//! The file starts with a Section Header Block and one Interface Description Block per tap
//! point (written before any lcore captures, so that a file that cannot be written is an
//! error at the start). Packets become Enhanced Packet Blocks, written through a 1 MiB
//! buffer; at the end each interface gets an Interface Statistics Block whose `isb_ifdrop`
//! is the number of frames its lcore could not put in the side ring.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use sluice_dataplane::tsc;

use super::CaptureError;
use super::tap::HEADER;

/// The file's write buffer.
const FILE_BUFFER: usize = 1 << 20;
/// How long the writer sleeps when every ring was empty. Short, so that on a CPU it shares
/// with an lcore it drains in small pieces: each takes the lcore off its CPU for less time
/// than its rings can buffer.
const IDLE: Duration = Duration::from_micros(200);

/// Writes an Enhanced Packet Block (pcapng, draft-ietf-opsawg-pcapng §4.3) in the
/// section's byte order (native: `PcapNgWriter::new`), with no options.
///
/// Encoded here rather than through `pcap_file`'s `EnhancedPacketBlock`, which serialises
/// each block twice (once to measure it) through many small writes: at millions of frames
/// a second the writer thread's cost per frame is the cost of capture. The file is read
/// back by `pcap_file`'s reader and by tcpdump in the tests.
fn write_epb(
    out: &mut impl Write,
    iface: u32,
    ts_ns: u64,
    orig: u32,
    data: &[u8],
) -> std::io::Result<()> {
    const EPB: u32 = 0x0000_0006;
    let pad = (4 - data.len() % 4) % 4;
    // Type, length, interface, timestamp (2), captured and original length: 28 bytes;
    // then the padded data and the length again.
    let total = (28 + data.len() + pad + 4) as u32;
    let mut head = [0u8; 28];
    for (i, word) in [
        EPB,
        total,
        iface,
        (ts_ns >> 32) as u32,
        ts_ns as u32,
        data.len() as u32,
        orig,
    ]
    .into_iter()
    .enumerate()
    {
        head[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    let mut tail = [0u8; 7];
    tail[pad..pad + 4].copy_from_slice(&total.to_ne_bytes());
    out.write_all(&head)?;
    out.write_all(data)?;
    out.write_all(&tail[..pad + 4])
}

/// TSC ticks to wall-clock nanoseconds, from one reading of both at the start.
#[derive(Debug, Clone, Copy)]
pub(super) struct WallClock {
    wall0_ns: u64,
    tsc0: u64,
    clock: tsc::Clock,
}

impl WallClock {
    pub(super) fn calibrate() -> Self {
        let clock = tsc::Clock::calibrate();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            wall0_ns: u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX),
            tsc0: tsc::now(),
            clock,
        }
    }

    /// Nanoseconds since the Unix epoch at `ticks`.
    fn ns(&self, ticks: u64) -> u64 {
        self.wall0_ns
            .saturating_add(self.clock.ticks_to_ns(ticks.saturating_sub(self.tsc0)))
    }

    fn now_ns(&self) -> u64 {
        self.ns(tsc::now())
    }
}

/// One tap point's ring, read by the writer.
pub(super) struct Source {
    pub(super) ring: rtrb::Consumer<u8>,
    pub(super) lost: Arc<AtomicU64>,
}

/// What a writer did, when it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct WriterReport {
    /// Frames written.
    pub(super) written: u64,
    /// The first write error, if any (nothing more was written after it).
    pub(super) error: Option<String>,
    /// CPU time the writer thread used (user + system), when the OS says.
    pub(super) cpu: Option<Duration>,
}

/// CPU time of the calling thread: the first field of `/proc/thread-self/schedstat`
/// (nanoseconds on a CPU).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// A pcapng file with its interfaces described, ready for packets.
pub(super) struct Writer {
    out: PcapNgWriter<BufWriter<File>>,
    sources: Vec<Source>,
    clock: WallClock,
    count: u64,
    written: Arc<AtomicU64>,
}

impl Writer {
    /// Creates `path` and writes its header and one interface per name.
    pub(super) fn create(
        path: &Path,
        names: &[String],
        snaplen: u32,
    ) -> Result<PcapNgWriter<BufWriter<File>>, CaptureError> {
        let file = File::create(path).map_err(|source| CaptureError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let header = |e: pcap_file::PcapError| CaptureError::Header {
            path: path.to_path_buf(),
            why: e.to_string(),
        };
        let mut out =
            PcapNgWriter::new(BufWriter::with_capacity(FILE_BUFFER, file)).map_err(header)?;
        for name in names {
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(name.clone())),
                    InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                        "sluice-fwd tap point {name}"
                    ))),
                    // Nanoseconds (10^-9): the EPB timestamps below are in ns.
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            };
            out.write_pcapng_block(idb).map_err(header)?;
        }
        out.get_mut()
            .flush()
            .map_err(|source| CaptureError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(out)
    }

    pub(super) fn new(
        out: PcapNgWriter<BufWriter<File>>,
        sources: Vec<Source>,
        clock: WallClock,
        count: u64,
        written: Arc<AtomicU64>,
    ) -> Self {
        Self {
            out,
            sources,
            clock,
            count,
            written,
        }
    }

    /// Drains the rings until every lcore has let go of its ring and it is empty.
    pub(super) fn run(mut self) -> WriterReport {
        let biggest = self
            .sources
            .iter()
            .map(|s| s.ring.buffer().capacity())
            .max()
            .unwrap_or(0);
        let mut buf = vec![0u8; biggest];
        let mut report = WriterReport::default();
        loop {
            let (mut moved, mut done) = (false, true);
            for i in 0..self.sources.len() {
                let s = &mut self.sources[i];
                // Abandoned first: once it is, the slots read next are all there will be.
                let gone = s.ring.is_abandoned();
                let n = s.ring.slots();
                if n > 0 && s.ring.pop_entire_slice(&mut buf[..n]).is_ok() {
                    moved = true;
                    self.packets(i as u32, &buf[..n], &mut report);
                }
                done &= gone && n == 0;
            }
            if done {
                break;
            }
            if !moved {
                std::thread::sleep(IDLE);
            }
        }
        self.finish(&mut report);
        report.cpu = thread_cpu();
        report
    }

    /// Writes the records in `bytes` (whole records, as the lcore pushed them).
    fn packets(&mut self, iface: u32, mut bytes: &[u8], report: &mut WriterReport) {
        while bytes.len() >= HEADER {
            let word = |at: usize, len: usize| {
                let mut b = [0u8; 8];
                b[..len].copy_from_slice(&bytes[at..at + len]);
                u64::from_le_bytes(b)
            };
            let (ts, orig, cap) = (word(0, 8), word(8, 4), word(12, 4) as usize);
            let Some(data) = bytes.get(HEADER..HEADER + cap) else {
                break; // cannot happen: the lcore pushes whole records
            };
            bytes = &bytes[HEADER + cap..];
            if report.error.is_some() || report.written >= self.count {
                continue;
            }
            match write_epb(
                self.out.get_mut(),
                iface,
                self.clock.ns(ts),
                orig as u32,
                data,
            ) {
                Ok(_) => {
                    report.written += 1;
                    self.written.store(report.written, Ordering::Relaxed);
                }
                Err(e) => report.error = Some(e.to_string()),
            }
        }
    }

    /// Interface statistics and the final flush.
    fn finish(&mut self, report: &mut WriterReport) {
        if report.error.is_some() {
            return;
        }
        let now = self.clock.now_ns();
        for (i, s) in self.sources.iter().enumerate() {
            let isb = InterfaceStatisticsBlock {
                interface_id: i as u32,
                timestamp: now,
                options: vec![InterfaceStatisticsOption::IsbIfDrop(
                    s.lost.load(Ordering::Relaxed),
                )],
            };
            if let Err(e) = self.out.write_pcapng_block(isb) {
                report.error = Some(e.to_string());
                return;
            }
        }
        if let Err(e) = self.out.get_mut().flush() {
            report.error = Some(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;

    #[test]
    fn packet_blocks_of_every_padding_read_back_with_pcap_file() {
        let path = std::env::temp_dir().join(format!("sluice-epb-{}.pcapng", std::process::id()));
        let mut out = Writer::create(&path, &["p/q0:rx".into(), "p/q0:tx".into()], 9).unwrap();
        let frames: Vec<Vec<u8>> = (1..=9u8).map(|n| (0..n).collect()).collect();
        for (i, f) in frames.iter().enumerate() {
            let ts = 1_700_000_000_123_456_789 + i as u64;
            write_epb(out.get_mut(), (i % 2) as u32, ts, 100 + i as u32, f).unwrap();
        }
        out.get_mut().flush().unwrap();
        drop(out);
        let mut r = PcapNgReader::new(File::open(&path).unwrap()).unwrap();
        let mut got = Vec::new();
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(p) = b.unwrap() {
                got.push((
                    p.interface_id,
                    p.timestamp,
                    p.original_len,
                    p.data.into_owned(),
                ));
            }
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.len(), frames.len());
        for (i, (iface, ts, orig, data)) in got.into_iter().enumerate() {
            assert_eq!(iface, (i % 2) as u32);
            // pcap_file reads the timestamp in the file's units as nanoseconds.
            assert_eq!(
                ts,
                Duration::from_nanos(1_700_000_000_123_456_789 + i as u64)
            );
            assert_eq!(orig, 100 + i as u32);
            assert_eq!(data, frames[i]);
        }
    }
}

//! The cost of `sluice-fwd --capture`: the forwarding rate of the built-in loopback
//! configuration with capture off and with every frame captured (`fwd0/q0:rx`), side by side,
//! in alternating rounds of one run.
//!
//! The capture file is `/dev/null`: the figure is the cost of copying every frame into the
//! side ring on the lcore and of the writer thread turning them into pcapng blocks, not of a
//! disk (at 20 Mpps of 64 B frames a file grows by 2 GB/s). The writer runs where the
//! scheduler puts it, pinned to core 0 (beside the generator and sink), pinned to core 1
//! (beside the forwarding lcore) and, where the machine has a third CPU, pinned to core 2
//! (a core of its own).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sluice_apps::capture::{CaptureControl, CaptureSettings, PointSpec, TapReport};
use sluice_apps::config::{Config, LOOPBACK_EXAMPLE};
use sluice_apps::fwd::{self, FwdSummary, RunOptions};

use crate::table::Table;

/// Where the writer runs in one column.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Off,
    Capture(Option<usize>),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Off => "capture off".into(),
            Variant::Capture(None) => "capture on, writer unpinned".into(),
            Variant::Capture(Some(0)) => "capture on, writer on core 0 (gen+sink)".into(),
            Variant::Capture(Some(1)) => "capture on, writer on core 1 (fwd lcore)".into(),
            Variant::Capture(Some(c)) => format!("capture on, writer on core {c} (own)"),
        }
    }
}

fn run(v: Variant, secs: f64) -> Result<(FwdSummary, Option<TapReport>), String> {
    let config = Config::from_str_named(LOOPBACK_EXAMPLE, "config/examples/loopback.toml")
        .map_err(|e| e.to_string())?;
    let opts = RunOptions {
        duration: Some(Duration::from_secs_f64(secs)),
        print_stats: false,
        ..RunOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let Variant::Capture(core) = v else {
        return fwd::run(&config, &opts, stop)
            .map(|s| (s, None))
            .map_err(|e| e.one_line());
    };
    let settings = CaptureSettings {
        writer_core: core,
        ..CaptureSettings::default()
    };
    let control = CaptureControl::new(&config, settings).map_err(|e| e.to_string())?;
    let spec = PointSpec::parse("fwd0/q0:rx").map_err(|e| e.to_string())?;
    control
        .start(&spec, Path::new("/dev/null"))
        .map_err(|e| e.to_string())?;
    let s = fwd::run_with(
        &config,
        &opts,
        stop,
        fwd::Attach {
            capture: Some(&control),
            cores: None,
        },
    )
    .map_err(|e| e.one_line());
    let tap = control.finish().pop();
    Ok((s?, tap))
}

fn median_range(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The capture-cost table of the forwarding section.
pub fn capture_section(quick: bool) -> String {
    let (rounds, secs) = if quick { (3, 1.0) } else { (5, 2.0) };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut variants = vec![
        Variant::Off,
        Variant::Capture(None),
        Variant::Capture(Some(0)),
        Variant::Capture(Some(1)),
    ];
    if cpus > 2 {
        variants.push(Variant::Capture(Some(2)));
    }
    let mut out = format!(
        "\nCapture cost: the same forwarder with capture off and with every frame of fwd0/q0:rx\n\
         captured to /dev/null (8 MiB side ring, snaplen 65535), {rounds} alternating rounds of \
         {secs:.0} s, {cpus} CPUs\n"
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let l: Vec<&str> = load.split_whitespace().take(3).collect();
        out.push_str(&format!("load average before the runs: {}\n", l.join(" ")));
    }
    out.push('\n');
    match lcore_cost::measure(if quick { 5 } else { 15 }, 20_000) {
        Ok((off, on, hz)) => out.push_str(&format!(
            "forwarding lcore step (rx burst fwd0 + tx burst fwd1, 32 x 64 B, one thread, median of \
             alternating blocks): capture off {off:.0} cycles/burst ({:.1} ns/frame), capture on \
             {on:.0} cycles/burst ({:.1} ns/frame): +{:.0}% on the lcore\n\n",
            off / hz * 1e9 / 32.0,
            on / hz * 1e9 / 32.0,
            100.0 * (on / off - 1.0)
        )),
        Err(e) => out.push_str(&format!("lcore step cost: failed: {e}\n\n")),
    }
    // The writer alone, its ring full: the best of 5 (time slices lost to other jobs only add).
    let frames = 500_000;
    let best = (0..5)
        .filter_map(|_| sluice_apps::capture::writer_cost(frames, 60).ok())
        .min();
    if let Some(d) = best {
        out.push_str(&format!(
            "writer alone ({frames} records of 60 B already in its ring, to /dev/null, best of 5): \
             {:.1} ns/frame\n\n",
            d.as_nanos() as f64 / frames as f64
        ));
    }
    let mut t = Table::new([
        "round",
        "variant",
        "Mpps",
        "written",
        "not captured",
        "writer CPU ns/frame",
    ]);
    let mut rates = vec![Vec::new(); variants.len()];
    for r in 0..rounds {
        for (i, &v) in variants.iter().enumerate() {
            let (s, tap) = match run(v, secs) {
                Ok(x) => x,
                Err(e) => return format!("{out}capture bench failed: {e}\n"),
            };
            rates[i].push(s.rate_mpps);
            let (w, n, cpu) = tap.map_or(("-".into(), "-".into(), "-".into()), |t| {
                let all = (t.written + t.not_captured).max(1) as f64;
                (
                    t.written.to_string(),
                    format!("{:.1}%", 100.0 * t.not_captured as f64 / all),
                    t.writer_cpu_s.map_or("n/a".into(), |c| {
                        format!("{:.1}", c * 1e9 / t.written.max(1) as f64)
                    }),
                )
            });
            t.row([
                format!("{}", r + 1),
                v.label(),
                format!("{:.2}", s.rate_mpps),
                w,
                n,
                cpu,
            ]);
        }
    }
    out.push_str(&t.render());
    out.push('\n');
    let (off, _, _) = median_range(&mut rates[0].clone());
    for (i, v) in variants.iter().enumerate() {
        let (m, lo, hi) = median_range(&mut rates[i]);
        let cost = if off > 0.0 {
            100.0 * (1.0 - m / off)
        } else {
            0.0
        };
        out.push_str(&format!(
            "{:<44} median {m:6.2} Mpps (range {lo:.2}-{hi:.2}), cost vs off {cost:5.1}%\n",
            v.label()
        ));
    }
    out
}

/// Cycles per burst of the forwarding lcore's step (rx burst from `fwd0`, tx burst to
/// `fwd1`), capture off and on, measured on one thread: the frames go round (sink → gen
/// untimed), each burst is timed with the TSC, and the medians of alternating blocks are
/// compared, so that time slices lost to other jobs fall out as outliers. The writer thread
/// drains the side ring to /dev/null meanwhile.
pub mod lcore_cost {
    use std::path::Path;

    use sluice_apps::capture::{CaptureControl, CaptureSettings, Direction, PointSpec, TapRx};
    use sluice_apps::config::{Config, LOOPBACK_EXAMPLE};
    use sluice_apps::ports::{open_pools, open_ports};
    use sluice_apps::traffic::frame;
    use sluice_dataplane::tsc;
    use sluice_mempool::Batch;
    use sluice_pmd::PktBuf;
    use sluice_pmd::net::NetPort;
    use sluice_pmd::net::{RxQueue, TxQueue};

    /// Frames going round.
    const FRAMES: usize = 1024;
    const BURST: usize = 32;

    /// Median cycles per burst of 32 with capture off and on, and the TSC rate.
    pub fn measure(blocks: usize, bursts_per_block: usize) -> Result<(f64, f64, f64), String> {
        let e = |e: sluice_apps::AppError| e.one_line();
        let config =
            Config::from_str_named(LOOPBACK_EXAMPLE, "loopback.toml").map_err(|e| e.to_string())?;
        let pools = open_pools(&config).map_err(e)?;
        let mut ports = open_ports(&config, &pools).map_err(e)?;
        let mut qs: Vec<_> = ports
            .iter_mut()
            .map(|p| p.take_queues().ok_or("queues taken"))
            .collect::<Result<_, _>>()?;
        // gen0, fwd0, fwd1, sink0
        let mut gen_tx = qs[0].tx.remove(0);
        let fwd_rx = qs[1].rx.remove(0);
        let mut fwd_tx = qs[2].tx.remove(0);
        let mut sink_rx = qs[3].rx.remove(0);
        let control =
            CaptureControl::new(&config, CaptureSettings::default()).map_err(|e| e.to_string())?;
        let tap = control.attach("fwd0", 0, Direction::Rx);
        let mut rx = TapRx::new(fwd_rx, tap);
        let tpl = frame::template(64, [2; 6], [4; 6]);
        let mut b: Batch<PktBuf, BURST> = Batch::new();
        for i in 0..FRAMES {
            let mut p = pools[0].alloc().ok_or("pool empty")?;
            p.extend_from_slice(&tpl).ok_or("frame too big")?;
            let _ = b.push(p);
            if b.is_full() || i + 1 == FRAMES {
                gen_tx.tx_burst(&mut b);
            }
        }
        let spec = PointSpec::parse("fwd0/q0:rx").map_err(|e| e.to_string())?;
        let (mut off, mut on) = (Vec::new(), Vec::new());
        let mut times = Vec::with_capacity(bursts_per_block);
        for block in 0..blocks * 2 {
            let capturing = block % 2 == 1;
            let id = if capturing {
                Some(
                    control
                        .start(&spec, Path::new("/dev/null"))
                        .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            times.clear();
            while times.len() < bursts_per_block {
                let t0 = tsc::now();
                let n = rx.rx_burst(&mut b);
                fwd_tx.tx_burst(&mut b);
                let t1 = tsc::now();
                if n == BURST && b.is_empty() {
                    times.push(t1 - t0);
                }
                let mut back: Batch<PktBuf, BURST> = Batch::new();
                sink_rx.rx_burst(&mut back);
                gen_tx.tx_burst(&mut back);
                drop(back);
                // A refused remainder goes round again next time.
                fwd_tx.tx_burst(&mut b);
            }
            times.sort_unstable();
            let median = times[times.len() / 2] as f64;
            if capturing {
                on.push(median)
            } else {
                off.push(median)
            }
            if let Some(id) = id {
                // The lcore (this thread) takes the stop at its next poll: keep polling.
                std::thread::scope(|s| {
                    let h = s.spawn(|| control.stop(id));
                    while !h.is_finished() {
                        rx.rx_burst(&mut b);
                        fwd_tx.tx_burst(&mut b);
                        let mut back: Batch<PktBuf, BURST> = Batch::new();
                        sink_rx.rx_burst(&mut back);
                        gen_tx.tx_burst(&mut back);
                    }
                    h.join()
                        .map_err(|_| "stop panicked".to_string())?
                        .map_err(|e| e.to_string())
                })?;
            }
        }
        control.finish();
        off.sort_by(f64::total_cmp);
        on.sort_by(f64::total_cmp);
        Ok((
            off[off.len() / 2],
            on[on.len() / 2],
            tsc::Clock::calibrate().hz(),
        ))
    }
}

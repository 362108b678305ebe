//! No command-line value panics, aborts or wraps: every binary's flags are parsed and
//! validated in-process from arbitrary command lines (what each binary does before it opens
//! anything), and a few hostile values go through the binaries themselves.

use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Parser;
use proptest::prelude::*;
use sluice_apps::blkperf::{
    BlkperfArgs, CoreList, MAX_IO_SIZE, MAX_QUEUE_DEPTH, Workload, parse_size,
};
use sluice_apps::cli::fwd::FwdArgs;
use sluice_apps::cli::pktgen::{MAX_RATE_PPS, PktgenArgs};
use sluice_apps::cli::{MAX_CORE, MAX_SECONDS, parse_core, parse_seconds};
use sluice_pmd::pci::PciAddr;

/// Values a flag may be given: anything, numbers of every width and sign, floats of every
/// kind, sizes with suffixes, and the values that once panicked or wrapped.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fx.,\\-\\[\\]kKmMeE+]{0,24}",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (
            any::<u64>(),
            prop::sample::select(vec!["k", "m", "K", "M", "g"])
        )
            .prop_map(|(n, s)| format!("{n}{s}")),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("{a}-{b}")),
        any::<u128>().prop_map(|n| format!("0x{n:x}")),
        prop::sample::select(vec![
            "1e300",
            "inf",
            "-inf",
            "NaN",
            "1e-300",
            "4000000000",
            "1e30k",
            "18446744073709551615",
            "18446744073709551616",
            "0-18446744073709551615",
            "0",
            "-1",
        ])
        .prop_map(String::from),
    ]
}

/// A command line: flags of the binary (sometimes with `=value`), values, anything.
fn command_line(flags: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    let arg = prop_oneof![
        prop::sample::select(flags).prop_map(String::from),
        (prop::sample::select(flags), value()).prop_map(|(f, v)| format!("{f}={v}")),
        value(),
    ];
    prop::collection::vec(arg, 0..10)
}

fn parse<A: Parser>(bin: &str, args: &[String]) -> Result<A, clap::Error> {
    A::try_parse_from(std::iter::once(bin.to_string()).chain(args.iter().cloned()))
}

const FWD_FLAGS: &[&str] = &["--config", "-c", "--duration", "-d", "--json", "--count"];
const PKTGEN_FLAGS: &[&str] = &[
    "--config",
    "--tx-port",
    "--rx-port",
    "--frame-size",
    "--rate",
    "--flows",
    "--count",
    "--duration",
    "-d",
    "--core",
    "--rx-core",
    "--json",
];
const BLKPERF_FLAGS: &[&str] = &[
    "-q",
    "--queue-depth",
    "-o",
    "--io-size",
    "-w",
    "-M",
    "-t",
    "--time",
    "-c",
    "--core-mask",
    "--target",
    "--verify",
    "--seed",
    "--span-mib",
    "--ram-mib",
    "--json",
];

/// A duration a run can add to `Instant::now()` and count in 64-bit TSC cycles (at up to
/// 10 GHz).
fn usable(d: Duration) -> bool {
    !d.is_zero()
        && d <= Duration::from_secs(MAX_SECONDS)
        && Instant::now().checked_add(d).is_some()
        && d.as_secs()
            .checked_add(1)
            .and_then(|s| s.checked_mul(10_000_000_000))
            .is_some()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sluice_fwd_command_lines_never_panic(args in command_line(FWD_FLAGS)) {
        if let Ok(a) = parse::<FwdArgs>("sluice-fwd", &args) {
            let opts = a.run_options();
            prop_assert!(opts.duration.is_none_or(usable));
            prop_assert!(opts.start.gen_count.is_none_or(|n| n > 0));
        }
    }

    #[test]
    fn sluice_pktgen_command_lines_never_panic(args in command_line(PKTGEN_FLAGS)) {
        if let Ok(a) = parse::<PktgenArgs>("sluice-pktgen", &args)
            && let Ok(opts) = a.options()
        {
            prop_assert!(opts.run.duration.is_none_or(usable));
            prop_assert!(opts.rate_pps.is_none_or(|r| (1..=MAX_RATE_PPS).contains(&r)));
            prop_assert!((1..=65536).contains(&opts.flows));
            prop_assert!(opts.core <= MAX_CORE && opts.rx_core.is_none_or(|c| c <= MAX_CORE));
            let size = usize::from(opts.frame_size);
            prop_assert!((64..=1518).contains(&size) || size == 9000);
        }
    }

    #[test]
    fn sluice_blkperf_command_lines_never_panic(args in command_line(BLKPERF_FLAGS)) {
        if let Ok(a) = parse::<BlkperfArgs>("sluice-blkperf", &args) {
            prop_assert!((1..=MAX_QUEUE_DEPTH).contains(&a.queue_depth));
            prop_assert!((1..=MAX_IO_SIZE).contains(&a.io_size));
            prop_assert!(usable(a.time));
            prop_assert!(a.cores.0.iter().all(|&c| c <= MAX_CORE));
            // What runs before any device is opened: the memory check (against a small
            // machine and a large one), the RAM disk's size, the job for any block size.
            let _ = a.check(Some(1 << 30));
            let _ = a.check(Some(u64::MAX));
            let _ = a.check(None);
            let _ = a.memory_needed();
            let _ = a.ram_blocks().checked_mul(512).expect("a RAM disk's bytes fit 64 bits");
            let _ = a.describe();
            for bs in [0, 1, 512, 4096, u32::MAX] {
                if let Ok(job) = a.job(bs) {
                    prop_assert_eq!(job.queue_depth, a.queue_depth as usize);
                }
            }
        }
    }

    #[test]
    fn value_parsers_never_panic_and_stay_in_range(s in value()) {
        if let Ok(d) = parse_seconds(&s) {
            prop_assert!(usable(d));
        }
        if let Ok(c) = parse_core(&s) {
            prop_assert!(c <= MAX_CORE);
        }
        if let Ok(n) = parse_size(&s) {
            prop_assert!((1..=MAX_IO_SIZE).contains(&n));
        }
        if let Ok(cores) = CoreList::from_str(&s) {
            prop_assert!(!cores.0.is_empty() && cores.0.iter().all(|&c| c <= MAX_CORE));
        }
        let _ = Workload::from_str(&s);
        // sluice-devbind's only parsed values (it has no numeric flag).
        let _ = PciAddr::from_str(&s);
    }

    /// A bad value for one numeric flag is refused with a message naming that flag.
    #[test]
    fn a_bad_numeric_value_names_its_flag(
        (bin, flag) in prop::sample::select(vec![
            ("sluice-fwd", "--duration"),
            ("sluice-fwd", "--count"),
            ("sluice-pktgen", "--duration"),
            ("sluice-pktgen", "--count"),
            ("sluice-pktgen", "--rate"),
            ("sluice-pktgen", "--flows"),
            ("sluice-pktgen", "--frame-size"),
            ("sluice-pktgen", "--core"),
            ("sluice-pktgen", "--rx-core"),
            ("sluice-blkperf", "--queue-depth"),
            ("sluice-blkperf", "--io-size"),
            ("sluice-blkperf", "--rwmixread"),
            ("sluice-blkperf", "--time"),
            ("sluice-blkperf", "--core-mask"),
            ("sluice-blkperf", "--seed"),
            ("sluice-blkperf", "--span-mib"),
            ("sluice-blkperf", "--ram-mib"),
        ]),
        v in value(),
    ) {
        let args = vec![format!("{flag}={v}")];
        let err = match bin {
            "sluice-fwd" => parse::<FwdArgs>(bin, &args).err(),
            "sluice-pktgen" => parse::<PktgenArgs>(bin, &args).err(),
            _ => parse::<BlkperfArgs>(bin, &args).err(),
        };
        if let Some(e) = err {
            let text = e.to_string();
            prop_assert!(text.contains(&format!("'{flag} ")), "{} {}: {}", bin, flag, text);
        }
    }
}

/// Runs a binary to its end: exit status, stdout, stderr.
fn run(bin: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_binaries_refuse_the_values_that_panicked_or_aborted() {
    let fwd = env!("CARGO_BIN_EXE_sluice-fwd");
    let pktgen = env!("CARGO_BIN_EXE_sluice-pktgen");
    let blkperf = env!("CARGO_BIN_EXE_sluice-blkperf");
    for (bin, args, names) in [
        (fwd, &["--duration", "1e300"][..], "'--duration <SECONDS>'"),
        (fwd, &["-d", "inf"][..], "'--duration <SECONDS>'"),
        (
            pktgen,
            &["--duration", "1e300"][..],
            "'--duration <SECONDS>'",
        ),
        (pktgen, &["--core", "4096"][..], "'--core <CORE>'"),
        (blkperf, &["-t", "inf"][..], "'--time <SECONDS>'"),
        (blkperf, &["-t", "1e300"][..], "'--time <SECONDS>'"),
        (
            blkperf,
            &["-q", "4000000000"][..],
            "'--queue-depth <QUEUE_DEPTH>'",
        ),
        (blkperf, &["-o", "1e30k"][..], "'--io-size <IO_SIZE>'"),
        (
            blkperf,
            &["-o", "18014398509481984k"][..],
            "'--io-size <IO_SIZE>'",
        ),
        (
            blkperf,
            &["--span-mib", "17592186044417"][..],
            "'--span-mib <SPAN_MIB>'",
        ),
        (
            blkperf,
            &["-c", "0-4000000000"][..],
            "'--core-mask <CORES>'",
        ),
    ] {
        let (code, out, err) = run(bin, args);
        assert_eq!(code, Some(2), "{args:?}: {out}\n{err}");
        assert!(err.contains(names), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn sluice_blkperf_checks_memory_before_allocating_it() {
    // 65536 × 1 GiB on four lcores: 256 TiB, more than any machine this runs on.
    let (code, out, err) = run(
        env!("CARGO_BIN_EXE_sluice-blkperf"),
        &["-q", "65536", "-o", "1024m", "-c", "0-3", "--target", "ram"],
    );
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("-q 65536 × -o 1073741824 B buffers on 4 lcore(s) plus --ram-mib 256"),
        "{err}"
    );
    assert!(err.contains("more than this machine's"), "{err}");
    assert!(out.is_empty(), "{out}");
}

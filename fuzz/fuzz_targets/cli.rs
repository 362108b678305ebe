//! Every binary's command line: `sluice-fwd`, `sluice-pktgen`, `sluice-blkperf` and
//! `sluice-devbind`, parsed and validated in-process from arbitrary arguments (what each does
//! before it opens anything), and the value parsers on their own.
//!
//! Input: a first byte choosing the binary, then the arguments separated by NUL bytes.
//! Invariants: no panic, no abort (no huge allocation), every accepted value within its
//! flag's range, and an accepted `--driver` a plain driver name.

#![no_main]

use std::str::FromStr;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use sluice_apps::blkperf::{
    BlkperfArgs, CoreList, MAX_IO_SIZE, MAX_QUEUE_DEPTH, Workload, parse_size,
};
use sluice_apps::cli::fwd::FwdArgs;
use sluice_apps::cli::pktgen::PktgenArgs;
use sluice_apps::cli::{MAX_CORE, MAX_SECONDS, parse_core, parse_seconds};
use sluice_apps::devbind::{DevbindArgs, DevbindCmd, parse_driver_name};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let args: Vec<&str> = text.split('\0').collect();
    match which % 5 {
        0 => fwd(&args),
        1 => pktgen(&args),
        2 => blkperf(&args),
        3 => devbind(&args),
        _ => values(text),
    }
});

fn line<'a>(bin: &'a str, args: &'a [&'a str]) -> impl Iterator<Item = &'a str> {
    std::iter::once(bin).chain(args.iter().copied())
}

fn fwd(args: &[&str]) {
    if let Ok(a) = FwdArgs::try_parse_from(line("sluice-fwd", args)) {
        let opts = a.run_options();
        assert!(opts.duration.is_none_or(|d| d.as_secs() <= MAX_SECONDS));
    }
}

fn pktgen(args: &[&str]) {
    if let Ok(a) = PktgenArgs::try_parse_from(line("sluice-pktgen", args))
        && let Ok(opts) = a.options()
    {
        assert!(opts.core <= MAX_CORE);
        assert!((1..=65536).contains(&opts.flows));
    }
}

fn blkperf(args: &[&str]) {
    if let Ok(a) = BlkperfArgs::try_parse_from(line("sluice-blkperf", args)) {
        assert!((1..=MAX_QUEUE_DEPTH).contains(&a.queue_depth));
        assert!((1..=MAX_IO_SIZE).contains(&a.io_size));
        let _ = a.check(Some(1 << 30));
        let _ = a.check(None);
        let _ = a.memory_needed();
        let _ = a.describe();
        for bs in [512, 4096] {
            let _ = a.job(bs);
        }
    }
}

fn devbind(args: &[&str]) {
    if let Ok(a) = DevbindArgs::try_parse_from(line("sluice-devbind", args))
        && let DevbindCmd::Bind { driver, .. } = &a.cmd
    {
        assert!(!driver.is_empty() && !driver.starts_with('-'));
        assert!(
            !driver.contains('/') && !driver.contains(".."),
            "{driver:?}"
        );
    }
}

fn values(s: &str) {
    if let Ok(d) = parse_seconds(s) {
        assert!(!d.is_zero() && d.as_secs() <= MAX_SECONDS);
    }
    if let Ok(c) = parse_core(s) {
        assert!(c <= MAX_CORE);
    }
    if let Ok(n) = parse_size(s) {
        assert!((1..=MAX_IO_SIZE).contains(&n));
    }
    if let Ok(cores) = CoreList::from_str(s) {
        assert!(cores.0.iter().all(|&c| c <= MAX_CORE));
    }
    let _ = Workload::from_str(s);
    if let Ok(d) = parse_driver_name(s) {
        assert!(
            d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }
}

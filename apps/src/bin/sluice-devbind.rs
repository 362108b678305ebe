//! `sluice-devbind`: show network and storage PCI devices, and bind them to vfio-pci (or back
//! to a kernel driver).
//!
//! ```text
//! sluice-devbind status
//! sluice-devbind bind 0000:00:04.0 00:05.0 [--driver vfio-pci] [--force]
//! sluice-devbind unbind 00:04.0
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sluice_apps::devbind::{Devbind, DevbindArgs, DevbindCmd as Cmd};

fn main() -> ExitCode {
    let cli = DevbindArgs::parse();
    let devbind = Devbind::new(&cli.sysfs_root);
    let result = match &cli.cmd {
        Cmd::Status => devbind.status().map(|s| vec![s.trim_end().to_string()]),
        Cmd::Bind {
            addrs,
            driver,
            force,
        } => devbind.bind(addrs, driver, *force),
        Cmd::Unbind { addrs } => devbind.unbind(addrs),
    };
    match result {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-devbind: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

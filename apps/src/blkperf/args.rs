//! Command-line value types: workloads, core lists, sizes.

use std::fmt;
use std::str::FromStr;

use crate::cli::MAX_CORE;

/// The I/O pattern (`-w`), with `spdk_nvme_perf`'s names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads.
    RandRead,
    /// Random writes.
    RandWrite,
    /// Sequential mix, `-M` percent reads.
    Rw,
    /// Random mix, `-M` percent reads.
    RandRw,
}

impl Workload {
    /// Whether offsets are random.
    pub fn random(self) -> bool {
        matches!(
            self,
            Workload::RandRead | Workload::RandWrite | Workload::RandRw
        )
    }

    /// Percentage of reads given `-M`.
    pub fn read_percent(self, mix: u8) -> u8 {
        match self {
            Workload::Read | Workload::RandRead => 100,
            Workload::Write | Workload::RandWrite => 0,
            Workload::Rw | Workload::RandRw => mix.min(100),
        }
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "read" => Workload::Read,
            "write" => Workload::Write,
            "randread" => Workload::RandRead,
            "randwrite" => Workload::RandWrite,
            "rw" => Workload::Rw,
            "randrw" => Workload::RandRw,
            _ => {
                return Err(format!(
                    "'{s}': expected read, write, randread, randwrite, rw or randrw"
                ));
            }
        })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Read => "read",
            Workload::Write => "write",
            Workload::RandRead => "randread",
            Workload::RandWrite => "randwrite",
            Workload::Rw => "rw",
            Workload::RandRw => "randrw",
        })
    }
}

/// CPU cores (`-c`): a hex mask (`0x3`) or a list with ranges (`0,2-3`, `[0-1]`), each
/// at most [`MAX_CORE`](crate::cli::MAX_CORE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreList(pub Vec<usize>);

impl FromStr for CoreList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let mut cores = Vec::new();
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            let mask = u128::from_str_radix(hex, 16).map_err(|e| format!("'{s}': {e}"))?;
            cores.extend((0..128).filter(|i| mask >> i & 1 == 1));
        } else {
            let body = t.trim_start_matches('[').trim_end_matches(']');
            for part in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                // Checked before a range is expanded: `0-99999999999` must not allocate.
                let num = |x: &str| {
                    let n = x
                        .trim()
                        .parse::<usize>()
                        .map_err(|e| format!("'{s}': '{x}': {e}"))?;
                    if n > MAX_CORE {
                        return Err(format!("'{s}': CPU {n} is over the maximum of {MAX_CORE}"));
                    }
                    Ok(n)
                };
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (num(a)?, num(b)?);
                        if a > b {
                            return Err(format!("'{s}': range {a}-{b} is backwards"));
                        }
                        cores.extend(a..=b);
                    }
                    None => cores.push(num(part)?),
                }
            }
        }
        cores.sort_unstable();
        cores.dedup();
        if cores.is_empty() {
            return Err(format!("'{s}' names no core"));
        }
        Ok(CoreList(cores))
    }
}

/// The largest I/O size (`-o`): 1 GiB.
pub const MAX_IO_SIZE: usize = 1 << 30;

/// An I/O size in bytes with an optional `k`/`m` suffix (binary): `4096`, `4k`, `1m`;
/// between 1 and [`MAX_IO_SIZE`].
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.strip_suffix(['k', 'm']) {
        Some(n) if t.ends_with('k') => (n, 1 << 10),
        Some(n) => (n, 1 << 20),
        None => (t.as_str(), 1),
    };
    let n: usize = num.parse().map_err(|e| format!("'{s}': {e}"))?;
    match n.checked_mul(mult) {
        Some(0) => Err(format!("'{s}': not a positive size")),
        Some(v) if v <= MAX_IO_SIZE => Ok(v),
        _ => Err(format!(
            "'{s}': over the maximum of {MAX_IO_SIZE} bytes (1 GiB)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists() {
        assert_eq!("0x5".parse::<CoreList>().unwrap().0, vec![0, 2]);
        assert_eq!("[0-1]".parse::<CoreList>().unwrap().0, vec![0, 1]);
        assert_eq!("3,0-1,1".parse::<CoreList>().unwrap().0, vec![0, 1, 3]);
        assert!("0x0".parse::<CoreList>().is_err());
        assert!("2-1".parse::<CoreList>().is_err());
        assert!("x".parse::<CoreList>().is_err());
        assert_eq!("1023".parse::<CoreList>().unwrap().0, vec![1023]);
        for big in ["1024", "0-99999999999999", "0-18446744073709551615"] {
            let e = big.parse::<CoreList>().unwrap_err();
            assert!(e.contains("over the maximum of 1023"), "{e}");
        }
    }

    #[test]
    fn workloads_and_sizes() {
        assert_eq!("randrw".parse::<Workload>().unwrap().read_percent(70), 70);
        assert_eq!(Workload::RandRead.read_percent(70), 100);
        assert!(Workload::RandWrite.random() && !Workload::Rw.random());
        assert!("seq".parse::<Workload>().is_err());
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("0").is_err() && parse_size("k").is_err());
        assert_eq!(parse_size("1024m"), Ok(MAX_IO_SIZE));
        for big in [
            "1025m",
            "1e30k",
            "18446744073709551615k",
            "99999999999999999999",
        ] {
            assert!(parse_size(big).is_err(), "{big}");
        }
    }
}

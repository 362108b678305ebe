//! `--lcores`: which CPU each of the configuration's cores runs on, in DPDK's notation
//! (`--lcores '(1-3)@1'`: lcores 1, 2 and 3 all on CPU 1).
//!
//! A configuration names its lcores by core (`core = 2`); a map sends some of them to other
//! CPUs, several onto one if need be, so that a configuration written for a bigger machine
//! runs on a small one. Lcores sharing a CPU busy-poll by turns (time slices): they run, but
//! far slower than with a CPU each, which [`CoreMap::sharing`] lets the forwarder say once.

use std::collections::BTreeMap;
use std::fmt;

use crate::cli::MAX_CORE;

/// Configuration core → CPU; cores not in the map run on the CPU of their number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreMap {
    map: BTreeMap<u32, usize>,
}

/// A number, a range `a-b`, or a parenthesised list of them: `3`, `1-3`, `(1-3,5)`.
fn parse_set(s: &str) -> Result<Vec<usize>, String> {
    let inner = match s.strip_prefix('(') {
        Some(rest) => rest
            .strip_suffix(')')
            .ok_or_else(|| format!("'{s}': unbalanced parenthesis"))?,
        None => s,
    };
    let mut out = Vec::new();
    for part in inner.split(',') {
        let num = |n: &str| -> Result<usize, String> {
            let v: usize = n
                .trim()
                .parse()
                .map_err(|_| format!("'{n}' is not a core number"))?;
            if v > MAX_CORE {
                return Err(format!("core {v} is over the maximum of {MAX_CORE}"));
            }
            Ok(v)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("'{part}': the range runs backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// Splits at the commas outside parentheses.
fn top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut from) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out
}

impl CoreMap {
    /// Parses `SET[@CPU][,SET[@CPU]...]`, where a SET is a core, a range or a parenthesised
    /// list, and CPU one CPU (`(1-3)@1,0@0`). A SET without `@` runs on its own numbers.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for item in top_level(s.trim()) {
            let (set, cpu) = match item.rsplit_once('@') {
                Some((set, cpu)) => {
                    let cpus = parse_set(cpu)?;
                    let [cpu] = cpus[..] else {
                        return Err(format!("'{item}': one CPU after '@'"));
                    };
                    (set, Some(cpu))
                }
                None => (item, None),
            };
            if set.is_empty() {
                return Err(format!("'{item}': no lcore before '@'"));
            }
            for core in parse_set(set)? {
                let to = cpu.unwrap_or(core);
                // At most MAX_CORE, which fits in u32.
                if map.insert(core as u32, to).is_some_and(|prev| prev != to) {
                    return Err(format!("lcore {core} is mapped twice"));
                }
            }
        }
        Ok(Self { map })
    }

    /// The CPU configuration core `core` runs on.
    pub fn cpu(&self, core: u32) -> usize {
        self.map.get(&core).copied().unwrap_or(core as usize)
    }

    /// The CPUs that more than one of `cores` map to, with those cores.
    pub fn sharing(&self, cores: &[u32]) -> Vec<(usize, Vec<u32>)> {
        let mut by_cpu: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for &c in cores {
            let v = by_cpu.entry(self.cpu(c)).or_default();
            if !v.contains(&c) {
                v.push(c);
            }
        }
        by_cpu.into_iter().filter(|(_, v)| v.len() > 1).collect()
    }

    /// Whether the map moves nothing.
    pub fn is_empty(&self) -> bool {
        self.map.iter().all(|(&c, &cpu)| c as usize == cpu)
    }
}

impl fmt::Display for CoreMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .map
            .iter()
            .map(|(c, cpu)| format!("{c}@{cpu}"))
            .collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpdk_notation_parses() {
        let m = CoreMap::parse("(1-3)@1").unwrap();
        assert_eq!(
            (m.cpu(0), m.cpu(1), m.cpu(2), m.cpu(3), m.cpu(4)),
            (0, 1, 1, 1, 4)
        );
        assert_eq!(m.sharing(&[0, 1, 2, 3]), vec![(1, vec![1, 2, 3])]);
        assert_eq!(m.to_string(), "1@1,2@1,3@1");
        let m = CoreMap::parse("(1,3)@0,2@1,5").unwrap();
        assert_eq!((m.cpu(1), m.cpu(2), m.cpu(3), m.cpu(5)), (0, 1, 0, 5));
        assert!(CoreMap::parse("0-3").unwrap().is_empty());
        for bad in [
            "", "@1", "(1-3@1", "1@(0-1)", "3-1@0", "x@1", "1@2,1@3", "1@1024",
        ] {
            assert!(CoreMap::parse(bad).is_err(), "{bad}");
        }
    }
}

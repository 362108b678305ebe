//! Helpers shared by the integration tests: hugepage reservation and raw memory checks.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::sync::Mutex;

use sluice_mempool::HugeMem;

const SYSFS_2M: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";

/// Serialises reservation within one test binary (tests run on parallel threads).
static RESERVE: Mutex<()> = Mutex::new(());

fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Free, unreserved 2 MiB hugepages.
pub fn free_2m() -> u64 {
    let free = read_u64(&format!("{SYSFS_2M}/free_hugepages")).unwrap_or(0);
    let resv = read_u64(&format!("{SYSFS_2M}/resv_hugepages")).unwrap_or(0);
    free.saturating_sub(resv)
}

/// Makes sure at least `need` 2 MiB hugepages are free, reserving 16 more than that if we may.
///
/// `Err` carries the reason to print when the test has to be skipped.
pub fn ensure_2m_hugepages(need: u64) -> Result<(), String> {
    let _guard = RESERVE.lock().unwrap_or_else(|e| e.into_inner());
    let have = free_2m();
    if have >= need {
        return Ok(());
    }
    let nr_path = format!("{SYSFS_2M}/nr_hugepages");
    let nr = read_u64(&nr_path)
        .ok_or_else(|| format!("{nr_path} unreadable: no 2 MiB hugepage support"))?;
    let want = nr + need + 16;
    if let Err(e) = fs::write(&nr_path, format!("{want}\n")) {
        return Err(format!(
            "{have} free, cannot write {want} to {nr_path}: {e} (needs root)"
        ));
    }
    let have = free_2m();
    if have >= need {
        eprintln!("note: reserved 2 MiB hugepages: {nr_path} = {want}");
        Ok(())
    } else {
        Err(format!(
            "wrote {want} to {nr_path} but only {have} are free (fragmented memory?)"
        ))
    }
}

/// Skips the calling test (returns from it) with a printed reason unless `need` 2 MiB
/// hugepages can be had.
#[macro_export]
macro_rules! require_2m_hugepages {
    ($need:expr) => {
        if let Err(why) = common::ensure_2m_hugepages($need) {
            println!("skipped: no 2 MiB hugepages reserved ({why})");
            return;
        }
    };
}

/// Whether we run as root.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The `/proc/self/smaps` block of the mapping (VMA) that holds `mem`.
///
/// The kernel merges adjacent anonymous mappings with identical flags, and tests run in
/// parallel threads of one process, so the VMA may be larger than `mem` and start before it:
/// callers compare with `>=` or against the block's own `Size`.
pub fn smaps_of(mem: &HugeMem) -> String {
    let base = mem.as_ptr().as_ptr() as usize;
    let smaps = fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let holds_base = |line: &str| {
        let range = line.split_whitespace().next().unwrap_or_default();
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        match (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) {
            (Ok(lo), Ok(hi)) => lo <= base && base < hi,
            _ => false,
        }
    };
    let mut lines = smaps.lines().skip_while(|l| !holds_base(l));
    let mut out = String::new();
    if let Some(head) = lines.next() {
        out.push_str(head);
        out.push('\n');
    }
    // Following lines up to the next mapping header (which starts with a hex range).
    for l in lines.take_while(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.ends_with(':'))
    }) {
        out.push_str(l);
        out.push('\n');
    }
    assert!(!out.is_empty(), "no smaps entry holds {base:#x}");
    out
}

/// The value of an smaps field in kB, e.g. `KernelPageSize`.
pub fn smaps_kb(block: &str, field: &str) -> u64 {
    block
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in\n{block}"))
}

/// Asserts that every byte of `mem` reads 0, then writes a pattern over all of it and reads it
/// back.
pub fn check_zeroed_and_writable(mem: &HugeMem) {
    let base = mem.as_ptr().as_ptr();
    let len = mem.len();
    for off in (0..len).step_by(8) {
        // SAFETY: `off + 8 <= len` (len is a multiple of 4096) and the region is mapped
        // read-write for as long as `mem` lives; no device or other thread uses it in this test.
        let v = unsafe { base.wrapping_add(off).cast::<u64>().read() };
        assert_eq!(v, 0, "byte {off:#x} not zeroed");
    }
    for off in 0..len {
        // SAFETY: as above, `off < len`.
        unsafe { base.wrapping_add(off).write(off as u8 ^ 0x5a) };
    }
    for off in (0..len).step_by(4093) {
        // SAFETY: as above, `off < len`.
        let v = unsafe { base.wrapping_add(off).read() };
        assert_eq!(v, off as u8 ^ 0x5a, "byte {off:#x}");
    }
    // SAFETY: as above, `len - 1 < len`.
    let last = unsafe { base.wrapping_add(len - 1).read() };
    assert_eq!(last, (len - 1) as u8 ^ 0x5a);
}

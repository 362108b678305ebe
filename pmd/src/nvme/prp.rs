//! Physical Region Page entries for a data buffer (NVMe 1.4 §4.3).
//!
//! A buffer is one IOVA-contiguous range (a mempool object). PRP1 may start inside a page
//! (dword-aligned); every later entry is a page start. Up to two pages fit in PRP1/PRP2;
//! beyond that PRP2 points at a PRP list, and when a list page fills up its last slot points
//! at the next list page. The list pages belong to the command's CID (reserved per CID when
//! the queue is created), so building PRPs never allocates.

/// Why a buffer cannot be described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrpError {
    /// The buffer does not start on a dword boundary.
    Misaligned,
    /// It needs more PRP list pages than a command has (over the transfer limit).
    TooLarge,
    /// Zero length.
    Empty,
}

/// How many PRP list pages a transfer of up to `max_len` bytes needs in the worst case
/// (a start offset in the first page), with `page`-byte pages.
pub const fn list_pages_for(max_len: usize, page: usize) -> usize {
    let data_pages = max_len.div_ceil(page) + 1;
    if data_pages <= 2 {
        return 0;
    }
    let entries = data_pages - 1; // PRP1 holds the first
    let per_page = page / 8;
    if entries <= per_page {
        1
    } else {
        // Every page but the last gives one slot to the chain pointer.
        (entries - 1).div_ceil(per_page - 1)
    }
}

/// Describes `len` bytes at `iova` with `page`-byte pages. List entries are written through
/// `write(list_page, slot, value)` into list pages whose IOVAs are `list_iovas`. Returns
/// (PRP1, PRP2).
pub fn build(
    iova: u64,
    len: usize,
    page: usize,
    list_iovas: &[u64],
    mut write: impl FnMut(usize, usize, u64),
) -> Result<(u64, u64), PrpError> {
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if iova & 3 != 0 {
        return Err(PrpError::Misaligned);
    }
    let page64 = page as u64;
    let first = page - (iova % page64) as usize;
    if len <= first {
        return Ok((iova, 0));
    }
    let second = iova + first as u64;
    let rest = len - first;
    if rest <= page {
        return Ok((iova, second));
    }
    let entries = rest.div_ceil(page);
    let per_page = page / 8;
    let needed = if entries <= per_page {
        1
    } else {
        (entries - 1).div_ceil(per_page - 1)
    };
    if needed > list_iovas.len() {
        return Err(PrpError::TooLarge);
    }
    let (mut list, mut slot) = (0usize, 0usize);
    for i in 0..entries {
        let left = entries - i;
        if slot == per_page - 1 && left > 1 {
            write(list, slot, list_iovas[list + 1]);
            list += 1;
            slot = 0;
        }
        write(list, slot, second + i as u64 * page64);
        slot += 1;
    }
    Ok((iova, list_iovas[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    type Run = (Result<(u64, u64), PrpError>, Vec<Vec<u64>>);

    fn run(iova: u64, len: usize, lists: usize) -> Run {
        let iovas: Vec<u64> = (0..lists as u64)
            .map(|i| 0x9000_0000 + i * 0x1000)
            .collect();
        let mut pages = vec![vec![0u64; PAGE / 8]; lists];
        let r = build(iova, len, PAGE, &iovas, |p, s, v| pages[p][s] = v);
        (r, pages)
    }

    /// Follows PRP1/PRP2 and the list chain as a controller would; returns the data pages.
    fn walk(prp1: u64, prp2: u64, len: usize, pages: &[Vec<u64>]) -> Vec<u64> {
        let mut out = vec![prp1];
        let first = PAGE - (prp1 as usize % PAGE);
        if len <= first {
            return out;
        }
        let mut left = (len - first).div_ceil(PAGE);
        if left == 1 {
            out.push(prp2);
            return out;
        }
        let mut list = ((prp2 - 0x9000_0000) / 0x1000) as usize;
        let mut slot = 0;
        while left > 0 {
            if slot == PAGE / 8 - 1 && left > 1 {
                list = ((pages[list][slot] - 0x9000_0000) / 0x1000) as usize;
                slot = 0;
            }
            out.push(pages[list][slot]);
            slot += 1;
            left -= 1;
        }
        out
    }

    #[test]
    fn one_and_two_pages_need_no_list() {
        assert_eq!(run(0x10_0000, 4096, 0).0, Ok((0x10_0000, 0)));
        assert_eq!(run(0x10_0200, 512, 0).0, Ok((0x10_0200, 0)));
        assert_eq!(run(0x10_0000, 8192, 0).0, Ok((0x10_0000, 0x10_1000)));
        assert_eq!(run(0x10_0800, 4096, 0).0, Ok((0x10_0800, 0x10_1000)));
        assert_eq!(run(0x10_0002, 4, 0).0, Err(PrpError::Misaligned));
        assert_eq!(run(0x10_0000, 0, 0).0, Err(PrpError::Empty));
    }

    #[test]
    fn lists_cover_every_page_and_chain() {
        for &(off, len) in &[
            (0usize, 3 * PAGE),
            (0x800, 2 * PAGE),
            (0, 128 * PAGE),
            (0, 513 * PAGE),
            (0x200, 2048 * PAGE),
            (0, 1024 * PAGE + 100),
        ] {
            let iova = 0x4000_0000 + off as u64;
            let lists = list_pages_for(len, PAGE);
            let (r, pages) = run(iova, len, lists);
            let (p1, p2) = r.unwrap();
            let got = walk(p1, p2, len, &pages);
            let want: Vec<u64> = std::iter::once(iova)
                .chain((1..).map(|i| (iova & !0xfff) + i * 0x1000))
                .take(got.len())
                .collect();
            assert_eq!(got, want, "off {off:#x} len {len:#x}");
            assert_eq!(
                got.len(),
                (off + len).div_ceil(PAGE),
                "off {off:#x} len {len:#x}"
            );
        }
    }

    #[test]
    fn list_page_counts() {
        assert_eq!(
            list_pages_for(PAGE, PAGE),
            0,
            "at most two pages with an offset"
        );
        assert_eq!(list_pages_for(2 * PAGE, PAGE), 1);
        assert_eq!(list_pages_for(512 << 10, PAGE), 1);
        assert_eq!(
            list_pages_for(2 << 20, PAGE),
            1,
            "512 entries fill one list page"
        );
        assert_eq!(
            list_pages_for(4 << 20, PAGE),
            3,
            "1024 entries: 511 + 511 + 2"
        );
        let (r, _) = run(0x4000_0000, 4 << 20, 1);
        assert_eq!(r, Err(PrpError::TooLarge));
    }
}

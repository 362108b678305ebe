//! The generator's frames: UDP over IPv4 over Ethernet, with a sequence number, a TSC stamp
//! and a known fill pattern in the payload, so that the sink can check every byte.
//!
//! ```text
//! offset  0 Ethernet  dst MAC, src MAC, type 0x0800
//!        14 IPv4      20 bytes, no options, DF, TTL 64, UDP, 198.18.0.1 -> 198.18.0.2
//!                     (RFC 2544's benchmark range), header checksum filled in
//!        34 UDP       src port 1024 + flow, dst port 21324 ("SL"), checksum 0 (none, legal
//!                     over IPv4: RFC 768)
//!        42 payload   sequence number (u64, big endian), TSC at send (u64, big endian),
//!                     then fill bytes: byte i of the frame is `fill(i)`
//! ```
//!
//! Sizes are as on the wire with the 4-byte FCS, which the buffer does not hold: a 64-byte
//! frame is 60 bytes of buffer data, leaving 18 bytes of payload (16 for sequence and stamp).
//! Flows differ only in the UDP source port, which the IPv4 checksum does not cover: the
//! template is checksummed once.

/// The UDP destination port of generated frames.
pub const UDP_PORT: u16 = 21324;
/// The first flow's UDP source port.
pub const FIRST_SRC_PORT: u16 = 1024;
/// FCS bytes counted in a frame size but not in the buffer.
pub const FCS: usize = 4;
/// Smallest frame size (with FCS).
pub const MIN_FRAME: usize = 64;
/// Largest standard frame size (with FCS).
pub const MAX_FRAME: usize = 1518;
/// Jumbo frame size (with FCS), for ports that carry it.
pub const JUMBO_FRAME: usize = 9000;

const IP: usize = 14;
const UDP: usize = 34;
const SEQ: usize = 42;
const STAMP: usize = 50;
/// Where the fill pattern starts.
pub const FILL: usize = 58;

/// The fill byte at frame offset `i`.
#[inline]
pub fn fill(i: usize) -> u8 {
    (i as u8).wrapping_mul(7) ^ 0x5a
}

/// Internet checksum (RFC 1071) of `bytes` (even length).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A frame of `frame_size` bytes (FCS included) with sequence 0, stamp 0, flow 0.
///
/// # Panics
/// If `frame_size` is below [`MIN_FRAME`] (callers validate it first).
pub fn template(frame_size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    assert!(
        frame_size >= MIN_FRAME,
        "frame size {frame_size} < {MIN_FRAME}"
    );
    let len = frame_size - FCS;
    let mut f: Vec<u8> = (0..len).map(fill).collect();
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - IP) as u16;
    let ip = &mut f[IP..UDP];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ]);
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[UDP..SEQ];
    udp[0..2].copy_from_slice(&FIRST_SRC_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&UDP_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - UDP) as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    f[SEQ..FILL].fill(0);
    f
}

/// Writes the per-frame fields into a copy of the template.
#[inline]
pub fn stamp(frame: &mut [u8], seq: u64, tsc: u64, flow: u16) {
    if frame.len() >= FILL {
        frame[UDP..UDP + 2].copy_from_slice(&FIRST_SRC_PORT.wrapping_add(flow).to_be_bytes());
        frame[SEQ..STAMP].copy_from_slice(&seq.to_be_bytes());
        frame[STAMP..FILL].copy_from_slice(&tsc.to_be_bytes());
    }
}

/// What the sink reads from a frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Sequence number.
    pub seq: u64,
    /// TSC at send.
    pub tsc: u64,
    /// Flow index.
    pub flow: u16,
}

/// Checks a received frame against the layout: Ethernet type, IPv4 header and checksum,
/// lengths, UDP port, and every fill byte. MAC addresses are not checked (forwarding modes
/// rewrite them). `None`: corrupted or not ours.
#[inline]
pub fn parse(frame: &[u8]) -> Option<Parsed> {
    let len = frame.len();
    if len < FILL || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[IP..UDP];
    if ip[0] != 0x45
        || ip[9] != 17
        || usize::from(u16::from_be_bytes([ip[2], ip[3]])) != len - IP
        || checksum(ip) != 0
    {
        return None;
    }
    let udp = &frame[UDP..SEQ];
    if u16::from_be_bytes([udp[2], udp[3]]) != UDP_PORT
        || usize::from(u16::from_be_bytes([udp[4], udp[5]])) != len - UDP
        || udp[6..8] != [0, 0]
    {
        return None;
    }
    if !frame[FILL..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == fill(FILL + i))
    {
        return None;
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&frame[at..at + 8]);
        u64::from_be_bytes(b)
    };
    Some(Parsed {
        seq: word(SEQ),
        tsc: word(STAMP),
        flow: u16::from_be_bytes([udp[0], udp[1]]).wrapping_sub(FIRST_SRC_PORT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_checksum_verifies() {
        for size in [64, 65, 128, 1518, 9000] {
            let mut f = template(size, [2; 6], [4; 6]);
            assert_eq!(f.len(), size - FCS);
            stamp(&mut f, 77, 123_456, 5);
            assert_eq!(
                parse(&f),
                Some(Parsed {
                    seq: 77,
                    tsc: 123_456,
                    flow: 5
                })
            );
        }
    }

    #[test]
    fn the_ipv4_checksum_matches_a_known_header() {
        // Wikipedia's IPv4 checksum example: the header sums to 0xb861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
    }

    #[test]
    fn any_flipped_byte_past_the_macs_is_caught() {
        let mut f = template(64, [2; 6], [4; 6]);
        stamp(&mut f, 1, 2, 0);
        for i in 12..f.len() {
            // Sequence, stamp and source port carry any value; everything else is checked.
            if (SEQ..FILL).contains(&i) || (UDP..UDP + 2).contains(&i) {
                continue;
            }
            let mut g = f.clone();
            g[i] ^= 0x10;
            assert_eq!(parse(&g), None, "flip at {i}");
        }
        assert_eq!(parse(&f[..50]), None);
    }
}

//! Completion status (NVMe 1.4 §4.6.1), decoded from the 15-bit status field
//! of a [`Cqe`](super::Cqe) into [`NvmeStatus`].

use std::fmt;

/// Status Code Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCodeType {
    /// 0: generic command status.
    Generic,
    /// 1: command-specific status.
    CommandSpecific,
    /// 2: media and data integrity errors.
    Media,
    /// 3: path-related status.
    Path,
    /// 4..=6 reserved, 7 vendor specific: the raw value.
    Other(u8),
}

impl StatusCodeType {
    fn from_bits(v: u8) -> Self {
        match v {
            0 => Self::Generic,
            1 => Self::CommandSpecific,
            2 => Self::Media,
            3 => Self::Path,
            v => Self::Other(v),
        }
    }
}

/// A non-success completion status: SCT, SC and the retry hints, with values and names.
///
/// `Copy` and free of allocation, so the I/O path can hand it back per command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NvmeStatus {
    /// Status Code Type.
    pub sct: StatusCodeType,
    /// Status Code.
    pub sc: u8,
    /// Do Not Retry: the same command will fail again.
    pub dnr: bool,
    /// More: further information in the Error Information log.
    pub more: bool,
    /// Command Retry Delay index (0: retry at once).
    pub crd: u8,
}

impl NvmeStatus {
    /// Decodes the status field (DW3 bits 31:17): `Ok(())` for success, else the status.
    #[inline]
    pub fn decode(status: u16) -> Result<(), NvmeStatus> {
        let sc = status as u8;
        let sct = (status >> 8 & 0x7) as u8;
        if sc == 0 && sct == 0 {
            return Ok(());
        }
        Err(NvmeStatus {
            sct: StatusCodeType::from_bits(sct),
            sc,
            crd: (status >> 11 & 0x3) as u8,
            more: status >> 13 & 1 == 1,
            dnr: status >> 14 & 1 == 1,
        })
    }

    /// The raw status field for this status (the inverse of [`decode`](Self::decode)).
    pub fn to_raw(self) -> u16 {
        let sct = match self.sct {
            StatusCodeType::Generic => 0,
            StatusCodeType::CommandSpecific => 1,
            StatusCodeType::Media => 2,
            StatusCodeType::Path => 3,
            StatusCodeType::Other(v) => v & 7,
        };
        u16::from(self.sc)
            | u16::from(sct) << 8
            | u16::from(self.crd & 3) << 11
            | u16::from(self.more) << 13
            | u16::from(self.dnr) << 14
    }

    /// A generic status with code `sc` (for building test completions).
    pub const fn generic(sc: u8, dnr: bool) -> Self {
        NvmeStatus {
            sct: StatusCodeType::Generic,
            sc,
            dnr,
            more: false,
            crd: 0,
        }
    }

    /// A short name for the statuses this driver meets, else `None`.
    pub fn name(self) -> Option<&'static str> {
        use StatusCodeType::*;
        Some(match (self.sct, self.sc) {
            (Generic, 0x01) => "invalid command opcode",
            (Generic, 0x02) => "invalid field in command",
            (Generic, 0x03) => "command ID conflict",
            (Generic, 0x04) => "data transfer error",
            (Generic, 0x06) => "internal error",
            (Generic, 0x07) => "command abort requested",
            (Generic, 0x0B) => "invalid namespace or format",
            (Generic, 0x0C) => "command sequence error",
            (Generic, 0x13) => "PRP offset invalid",
            (Generic, 0x80) => "LBA out of range",
            (Generic, 0x81) => "capacity exceeded",
            (Generic, 0x82) => "namespace not ready",
            (CommandSpecific, 0x00) => "completion queue invalid",
            (CommandSpecific, 0x01) => "invalid queue identifier",
            (CommandSpecific, 0x02) => "invalid queue size",
            (CommandSpecific, 0x08) => "invalid interrupt vector",
            (CommandSpecific, 0x0C) => "invalid queue deletion",
            (Media, 0x81) => "unrecovered read error",
            _ => return None,
        })
    }
}

impl fmt::Display for NvmeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sct: u8 = match self.sct {
            StatusCodeType::Generic => 0,
            StatusCodeType::CommandSpecific => 1,
            StatusCodeType::Media => 2,
            StatusCodeType::Path => 3,
            StatusCodeType::Other(v) => v,
        };
        write!(f, "SCT {sct:#x} SC {:#04x}", self.sc)?;
        if let Some(n) = self.name() {
            write!(f, " ({n})")?;
        }
        if self.dnr {
            f.write_str(", do not retry")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_ok() {
        assert_eq!(NvmeStatus::decode(0), Ok(()));
        // CRD/M/DNR without a code still is not success only if SC/SCT say so.
        assert_eq!(NvmeStatus::decode(1 << 14), Ok(()));
    }

    #[test]
    fn fields_decode_and_round_trip() {
        // SCT 1, SC 0x0C, DNR: invalid queue deletion.
        let raw = 1 << 14 | 1 << 8 | 0x0C;
        let s = NvmeStatus::decode(raw).unwrap_err();
        assert_eq!(s.sct, StatusCodeType::CommandSpecific);
        assert_eq!((s.sc, s.dnr, s.more, s.crd), (0x0C, true, false, 0));
        assert_eq!(s.to_raw(), raw);
        assert_eq!(
            s.to_string(),
            "SCT 0x1 SC 0x0c (invalid queue deletion), do not retry"
        );
        let s = NvmeStatus::decode(7 << 8 | 0x42 | 2 << 11 | 1 << 13).unwrap_err();
        assert_eq!(s.sct, StatusCodeType::Other(7));
        assert_eq!((s.crd, s.more, s.name()), (2, true, None));
        assert_eq!(
            NvmeStatus::generic(0x80, false).to_string(),
            "SCT 0x0 SC 0x80 (LBA out of range)"
        );
    }
}

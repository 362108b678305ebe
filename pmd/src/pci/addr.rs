//! [`PciAddr`]: a PCI function's address (domain, bus, device, function).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::pci::PciError;

/// A PCI function address, `DDDD:BB:DD.F` as sysfs and VFIO name it.
///
/// Parses both the full form (`0000:00:04.0`) and the short one lspci prints for domain 0
/// (`00:04.0`); always displays the full form, which is what sysfs paths and
/// `VFIO_GROUP_GET_DEVICE_FD` want.
///
/// ```
/// use sluice_pmd::pci::PciAddr;
///
/// let a: PciAddr = "00:04.0".parse()?;
/// assert_eq!(a.to_string(), "0000:00:04.0");
/// assert_eq!((a.bus(), a.device(), a.function()), (0, 4, 0));
/// # Ok::<(), sluice_pmd::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddr {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddr {
    /// The address `domain:bus:device.function`, or `None` if `device > 31` or
    /// `function > 7`.
    pub const fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        if device > 31 || function > 7 {
            return None;
        }
        Some(PciAddr {
            domain,
            bus,
            device,
            function,
        })
    }

    /// PCI segment (domain).
    pub const fn domain(self) -> u32 {
        self.domain
    }

    /// Bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// Device (slot) number, 0..=31.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// Function number, 0..=7.
    pub const fn function(self) -> u8 {
        self.function
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl fmt::Debug for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PciAddr({self})")
    }
}

impl FromStr for PciAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |why| {
            Error::from(PciError::ParseAddr {
                input: s.to_string(),
                why,
            })
        };
        let hex = |part: &str, max_digits: usize, what| {
            // `from_str_radix` alone would accept a leading '+'.
            if part.is_empty()
                || part.len() > max_digits
                || !part.bytes().all(|c| c.is_ascii_hexdigit())
            {
                return Err(err(what));
            }
            u32::from_str_radix(part, 16).map_err(|_| err(what))
        };
        let (rest, function) = s
            .rsplit_once('.')
            .ok_or_else(|| err("no '.' before the function"))?;
        let mut parts = rest.split(':').collect::<Vec<_>>();
        let domain = match parts.len() {
            2 => 0,
            3 => hex(parts.remove(0), 8, "bad domain")?,
            _ => return Err(err("expected [domain:]bus:device")),
        };
        let bus = hex(parts[0], 2, "bad bus")?;
        let device = hex(parts[1], 2, "bad device")?;
        let function = hex(function, 1, "bad function")?;
        // Bus fits in u8 by its digit count; device and function are range-checked by `new`.
        PciAddr::new(domain, bus as u8, device as u8, function as u8)
            .ok_or_else(|| err("device must be at most 1f and function at most 7"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_displays_the_full_one() {
        let a: PciAddr = "0000:00:04.0".parse().unwrap();
        assert_eq!(a, PciAddr::new(0, 0, 4, 0).unwrap());
        let b: PciAddr = "00:04.0".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(b.to_string(), "0000:00:04.0");
        let c: PciAddr = "10000:3a:1F.7".parse().unwrap();
        assert_eq!(c.to_string(), "10000:3a:1f.7");
        assert_eq!(
            (c.domain(), c.bus(), c.device(), c.function()),
            (0x10000, 0x3a, 0x1f, 7)
        );
    }

    #[test]
    fn rejects_malformed_addresses_with_the_reason() {
        for (bad, why) in [
            ("", "no '.' before the function"),
            ("00:04", "no '.' before the function"),
            ("04.0", "expected [domain:]bus:device"),
            ("0:0:0:04.0", "expected [domain:]bus:device"),
            (
                "00:20.0",
                "device must be at most 1f and function at most 7",
            ),
            (
                "00:04.8",
                "device must be at most 1f and function at most 7",
            ),
            ("00:04.10", "bad function"),
            ("100:04.0", "bad bus"),
            ("zz:04.0", "bad bus"),
            ("00:+4.0", "bad device"),
            ("123456789:00:04.0", "bad domain"),
            ("00::04.0", "bad bus"),
        ] {
            match bad.parse::<PciAddr>() {
                Err(Error::Pci(PciError::ParseAddr { input, why: w })) => {
                    assert_eq!((input.as_str(), w), (bad, why), "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let e = "x".parse::<PciAddr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "'x' is not a PCI address (no '.' before the function); write it as 0000:00:04.0 or 00:04.0"
        );
    }

    #[test]
    fn orders_by_domain_bus_device_function() {
        let mut v: Vec<PciAddr> = ["00:1f.2", "0001:00:00.0", "00:04.0", "00:1f.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            s,
            [
                "0000:00:04.0",
                "0000:00:1f.0",
                "0000:00:1f.2",
                "0001:00:00.0"
            ]
        );
    }
}

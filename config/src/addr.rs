//! Address types that appear in a config: Ethernet MAC addresses and PCI addresses.

use std::fmt;
use std::str::FromStr;

use crate::ConfigError;

/// An Ethernet MAC address, written `02:00:00:00:00:01` (six hex octets, `:`-separated,
/// either case; displayed in lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True for a group (multicast or broadcast) address: the I/G bit, bit 0 of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::value(s, "a MAC address: six hex octets like 02:00:00:00:00:01");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A PCI address (domain, bus, device, function), as sysfs and VFIO name devices.
///
/// Parsed from `DDDD:BB:DD.F` or, with domain 0 implied, `BB:DD.F`; all fields hex, bus at most
/// `ff`, device at most `1f`, function at most `7`. Displayed in the canonical long form,
/// `0000:00:10.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddr {
    /// PCI segment (domain), `0000` on most machines.
    pub domain: u16,
    /// Bus number, `00..=ff`.
    pub bus: u8,
    /// Device (slot) number, `00..=1f`.
    pub device: u8,
    /// Function number, `0..=7`.
    pub function: u8,
}

impl FromStr for PciAddr {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ConfigError::value(
                s,
                &format!("a PCI address like 0000:00:10.0 or 00:10.0 ({why})"),
            )
        };
        // Fixed-width hex field of 1..=max_len digits, at most `max`.
        let field = |text: &str, name: &str, max_len: usize, max: u32| {
            if text.is_empty()
                || text.len() > max_len
                || !text.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(bad(&format!("{name} must be 1 to {max_len} hex digits")));
            }
            let v = u32::from_str_radix(text, 16).map_err(|_| bad(name))?;
            if v > max {
                return Err(bad(&format!("{name} {text} is over {max:x}")));
            }
            Ok(v)
        };
        let (slot, function) = s.rsplit_once('.').ok_or_else(|| bad("missing .function"))?;
        let fields: Vec<&str> = slot.split(':').collect();
        let (domain, bus, device) = match fields.as_slice() {
            [bus, device] => (0, *bus, *device),
            [domain, bus, device] => (field(domain, "domain", 4, 0xffff)?, *bus, *device),
            _ => return Err(bad("expected [domain:]bus:device.function")),
        };
        Ok(PciAddr {
            domain: domain as u16,
            bus: field(bus, "bus", 2, 0xff)? as u8,
            device: field(device, "device", 2, 0x1f)? as u8,
            function: field(function, "function", 1, 7)? as u8,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_displays_lower_case() {
        let mac: MacAddr = "02:AB:00:00:00:ff".parse().unwrap();
        assert_eq!(mac, MacAddr([0x02, 0xab, 0, 0, 0, 0xff]));
        assert_eq!(mac.to_string(), "02:ab:00:00:00:ff");
        assert!(!mac.is_multicast());
        assert!(
            "ff:ff:ff:ff:ff:ff"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
    }

    #[test]
    fn mac_rejects_malformed() {
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "2:00:00:00:00:01",
            "02-00-00-00-00-01",
            "02:00:00:00:00:0g",
            "02:00:00:00:00:+1",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn pci_short_and_long_forms() {
        let short: PciAddr = "00:10.0".parse().unwrap();
        let long: PciAddr = "0000:00:10.0".parse().unwrap();
        assert_eq!(short, long);
        assert_eq!(short.to_string(), "0000:00:10.0");
        let top: PciAddr = "ffff:FF:1f.7".parse().unwrap();
        assert_eq!(
            top,
            PciAddr {
                domain: 0xffff,
                bus: 0xff,
                device: 0x1f,
                function: 7
            }
        );
        assert_eq!(top.to_string(), "ffff:ff:1f.7");
    }

    #[test]
    fn pci_rejects_out_of_range_and_malformed() {
        for (bad, why) in [
            ("00:20.0", "device 20 is over 1f"),
            ("00:10.8", "function 8 is over 7"),
            ("100:10.0", "bus must be 1 to 2 hex digits"),
            ("10000:00:10.0", "domain must be 1 to 4 hex digits"),
            ("00:10", "missing .function"),
            ("0000:00:00:10.0", "expected [domain:]bus:device.function"),
            ("0g:10.0", "bus must be"),
            ("00:10.", "function must be"),
        ] {
            let err = bad.parse::<PciAddr>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}

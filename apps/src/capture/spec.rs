//! What a capture argument names: `PORT[/qN][:rx|tx|both]` and, on the command line,
//! `=FILE.pcapng` after it.

use std::fmt;
use std::path::PathBuf;

use super::CaptureError;

/// A direction of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received frames.
    Rx,
    /// Transmitted frames (those the queue accepted).
    Tx,
}

impl Direction {
    /// `rx` or `tx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
        }
    }
}

/// The tap points a capture names: a port, one of its queues or all, one direction or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSpec {
    /// The port's name.
    pub port: String,
    /// The queue; `None`: every queue of the port.
    pub queue: Option<u16>,
    /// Receive side.
    pub rx: bool,
    /// Transmit side.
    pub tx: bool,
}

impl PointSpec {
    /// Parses `PORT[/qN][:rx|tx|both]` (both directions when none is given).
    pub fn parse(s: &str) -> Result<Self, CaptureError> {
        let bad = |why: &str| CaptureError::Syntax {
            arg: s.to_string(),
            why: why.to_string(),
        };
        let (rest, dir) = match s.rsplit_once(':') {
            Some((rest, dir)) => (rest, dir),
            None => (s, "both"),
        };
        let (rx, tx) = match dir {
            "rx" => (true, false),
            "tx" => (false, true),
            "both" => (true, true),
            _ => return Err(bad("the direction is rx, tx or both")),
        };
        let (port, queue) = match rest.split_once('/') {
            Some((port, q)) => {
                let n = q
                    .strip_prefix('q')
                    .and_then(|n| n.parse::<u16>().ok())
                    .ok_or_else(|| bad("the queue is written qN (q0, q1, ...)"))?;
                (port, Some(n))
            }
            None => (rest, None),
        };
        if port.is_empty() {
            return Err(bad("no port name"));
        }
        Ok(Self {
            port: port.to_string(),
            queue,
            rx,
            tx,
        })
    }

    /// Whether the point `port`/`queue`/`dir` is one of these.
    pub fn covers(&self, port: &str, queue: u16, dir: Direction) -> bool {
        self.port == port
            && self.queue.is_none_or(|q| q == queue)
            && match dir {
                Direction::Rx => self.rx,
                Direction::Tx => self.tx,
            }
    }
}

impl fmt::Display for PointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.port)?;
        if let Some(q) = self.queue {
            write!(f, "/q{q}")?;
        }
        let dir = match (self.rx, self.tx) {
            (true, false) => "rx",
            (false, true) => "tx",
            _ => "both",
        };
        write!(f, ":{dir}")
    }
}

/// One `--capture PORT[/qN][:rx|tx|both]=FILE` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    /// What to capture.
    pub points: PointSpec,
    /// Where to write it.
    pub path: PathBuf,
}

impl CaptureRequest {
    /// Parses `PORT[/qN][:rx|tx|both]=FILE`.
    pub fn parse(s: &str) -> Result<Self, CaptureError> {
        let (points, path) = s.split_once('=').ok_or_else(|| CaptureError::Syntax {
            arg: s.to_string(),
            why: "expected PORT[/qN][:rx|tx|both]=FILE.pcapng".into(),
        })?;
        if path.is_empty() {
            return Err(CaptureError::Syntax {
                arg: s.to_string(),
                why: "no file after '='".into(),
            });
        }
        Ok(Self {
            points: PointSpec::parse(points)?,
            path: PathBuf::from(path),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults() {
        let p = PointSpec::parse("fwd0").unwrap();
        assert_eq!((p.queue, p.rx, p.tx), (None, true, true));
        let p = PointSpec::parse("fwd0/q3:tx").unwrap();
        assert_eq!(
            (p.port.as_str(), p.queue, p.rx, p.tx),
            ("fwd0", Some(3), false, true)
        );
        assert_eq!(p.to_string(), "fwd0/q3:tx");
        assert!(p.covers("fwd0", 3, Direction::Tx));
        assert!(!p.covers("fwd0", 3, Direction::Rx));
        assert!(!p.covers("fwd0", 2, Direction::Tx));
        for bad in ["", ":rx", "fwd0/3", "fwd0/qx", "fwd0:up", "fwd0/q70000"] {
            assert!(PointSpec::parse(bad).is_err(), "{bad}");
        }
        let r = CaptureRequest::parse("fwd1/q0:rx=/tmp/a=b.pcapng").unwrap();
        assert_eq!(r.path, PathBuf::from("/tmp/a=b.pcapng"));
        assert!(CaptureRequest::parse("fwd1").is_err());
        assert!(CaptureRequest::parse("fwd1=").is_err());
    }
}

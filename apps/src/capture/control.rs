//! Starting, stopping and listing captures: before the lcores start and while they run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use sluice_config::{Config, LcoreRole};

use super::tap::{Active, Tap, TapCmd};
use super::writer::{Source, WallClock, Writer, WriterReport};
use super::{CaptureError, Direction, PointSpec};

/// Commands that can wait for an lcore at one tap point.
const CMD_SLOTS: usize = 16;
/// How long [`CaptureControl::stop`] waits for a writer to end before it reports the tap as
/// still stopping (an lcore that no longer polls never lets go of its ring).
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How captures are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSettings {
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Frames each capture writes before it stops; `None`: until stopped.
    pub count: Option<u64>,
    /// Bytes of each tap point's side ring.
    pub ring_bytes: usize,
    /// The CPU the writer threads run on; `None`: wherever the scheduler puts them.
    pub writer_core: Option<usize>,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            snaplen: 65535,
            count: None,
            ring_bytes: 8 << 20,
            writer_core: None,
        }
    }
}

/// Where a capture stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TapState {
    /// Capturing (or draining what its lcores captured).
    Running,
    /// Stopped, file complete.
    Done,
}

/// One capture, as [`CaptureControl::list`] and the summary show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TapReport {
    /// Its id (for `stop`).
    pub id: u32,
    /// The tap points, as asked for (`fwd0/q0:rx`).
    pub points: String,
    /// The file.
    pub path: PathBuf,
    /// Running or done.
    pub state: TapState,
    /// Frames written to the file.
    pub written: u64,
    /// Frames that did not fit in a side ring (not in the file).
    pub not_captured: u64,
    /// The write error that ended the file early, if any.
    pub error: Option<String>,
    /// CPU seconds the writer thread used, once done (where the OS says).
    pub writer_cpu_s: Option<f64>,
}

/// One queue in one direction that a forwarding lcore polls.
struct Point {
    name: String,
    port: String,
    queue: u16,
    dir: Direction,
    /// The lcore's command ring, once the queue is wrapped.
    cmds: Option<rtrb::Producer<TapCmd>>,
    /// A capture asked for before the lcore started.
    pending: Option<Box<Active>>,
    /// The capture that has it.
    tap: Option<u32>,
}

struct TapEntry {
    id: u32,
    points: String,
    path: PathBuf,
    at: Vec<usize>,
    lost: Vec<Arc<AtomicU64>>,
    written: Arc<AtomicU64>,
    thread: Option<JoinHandle<WriterReport>>,
    report: Option<WriterReport>,
}

impl TapEntry {
    fn report(&self) -> TapReport {
        let not_captured = self.lost.iter().map(|l| l.load(Ordering::Relaxed)).sum();
        TapReport {
            id: self.id,
            points: self.points.clone(),
            path: self.path.clone(),
            state: if self.report.is_some() {
                TapState::Done
            } else {
                TapState::Running
            },
            written: match &self.report {
                Some(r) => r.written,
                None => self.written.load(Ordering::Relaxed),
            },
            not_captured,
            error: self.report.as_ref().and_then(|r| r.error.clone()),
            writer_cpu_s: self
                .report
                .as_ref()
                .and_then(|r| r.cpu)
                .map(|d| d.as_secs_f64()),
        }
    }

    /// Collects the writer's report if it has ended, or within `wait`.
    fn reap(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Some(t) = &self.thread {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(t) = self.thread.take()
        {
            self.report = Some(t.join().unwrap_or_else(|_| WriterReport {
                written: self.written.load(Ordering::Relaxed),
                error: Some("the writer thread panicked".into()),
                cpu: None,
            }));
        }
    }
}

struct Inner {
    points: Vec<Point>,
    taps: Vec<TapEntry>,
    next_id: u32,
}

/// Starts, stops and lists the captures of one forwarder run.
pub struct CaptureControl {
    settings: CaptureSettings,
    clock: WallClock,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CaptureControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureControl")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CaptureControl {
    /// The control of `config`'s tap points: every queue its forwarding lcores poll, in
    /// each direction they use it.
    pub fn new(config: &Config, settings: CaptureSettings) -> Result<Self, CaptureError> {
        if settings.snaplen == 0 {
            return Err(CaptureError::Setting(
                "the snaplen is at least 1 byte".into(),
            ));
        }
        if settings.ring_bytes < 64 << 10 {
            return Err(CaptureError::Setting(
                "a capture ring is at least 64 KiB".into(),
            ));
        }
        let mut points = Vec::new();
        for l in config.lcores() {
            let dirs: &[(Direction, &[sluice_config::QueueRef])] = match l.role {
                LcoreRole::RunToCompletion => {
                    &[(Direction::Rx, &l.rx[..]), (Direction::Tx, &l.tx[..])]
                }
                LcoreRole::Rx => &[(Direction::Rx, &l.rx[..])],
                LcoreRole::Tx => &[(Direction::Tx, &l.tx[..])],
                LcoreRole::Worker => &[],
            };
            for &(dir, qs) in dirs {
                for &q in qs {
                    let port = config.port(q.port).name.clone();
                    points.push(Point {
                        name: format!("{}:{}", config.queue_name(q), dir.as_str()),
                        port,
                        queue: q.queue,
                        dir,
                        cmds: None,
                        pending: None,
                        tap: None,
                    });
                }
            }
        }
        Ok(Self {
            settings,
            clock: WallClock::calibrate(),
            inner: Mutex::new(Inner {
                points,
                taps: Vec::new(),
                next_id: 1,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tap points there are (`fwd0/q0:rx`, ...).
    pub fn points(&self) -> Vec<String> {
        self.lock().points.iter().map(|p| p.name.clone()).collect()
    }

    /// Starts capturing `spec` into `path` (created or truncated); returns the capture's id.
    /// The file is created and its header written before this returns.
    pub fn start(&self, spec: &PointSpec, path: &Path) -> Result<u32, CaptureError> {
        let mut inner = self.lock();
        let at = matching(&inner.points, spec)?;
        if let Some(p) = at
            .iter()
            .map(|&i| &inner.points[i])
            .find(|p| p.tap.is_some())
        {
            return Err(CaptureError::Busy {
                point: p.name.clone(),
                tap: p.tap.unwrap_or_default(),
            });
        }
        let names: Vec<String> = at.iter().map(|&i| inner.points[i].name.clone()).collect();
        let out = Writer::create(path, &names, self.settings.snaplen)?;
        let id = inner.next_id;
        let written = Arc::new(AtomicU64::new(0));
        let (mut sources, mut actives, mut lost) = (Vec::new(), Vec::new(), Vec::new());
        let stage = (self.settings.ring_bytes / 4).clamp(64 << 10, 1 << 20);
        let count = self.settings.count.unwrap_or(u64::MAX);
        for _ in &at {
            let (tx, rx) = rtrb::RingBuffer::new(self.settings.ring_bytes);
            let l = Arc::new(AtomicU64::new(0));
            let snap = self.settings.snaplen as usize;
            actives.push(Active::new(tx, stage, snap, count, l.clone()));
            sources.push(Source {
                ring: rx,
                lost: l.clone(),
            });
            lost.push(l);
        }
        let writer = Writer::new(out, sources, self.clock, count, written.clone());
        let core = self.settings.writer_core;
        let thread = std::thread::Builder::new()
            .name(format!("capture {id}"))
            .spawn(move || {
                if let Some(id) = core {
                    // Best effort: a writer that cannot be pinned still writes.
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                writer.run()
            })
            .map_err(CaptureError::Thread)?;
        for (&i, a) in at.iter().zip(actives) {
            let p = &mut inner.points[i];
            p.tap = Some(id);
            match &mut p.cmds {
                // The lcore takes it at its next poll; the ring has room (CMD_SLOTS).
                Some(c) => drop(c.push(TapCmd::Start(a))),
                None => p.pending = Some(a),
            }
        }
        inner.next_id += 1;
        inner.taps.push(TapEntry {
            id,
            points: spec.to_string(),
            path: path.to_path_buf(),
            at,
            lost,
            written,
            thread: Some(thread),
            report: None,
        });
        Ok(id)
    }

    /// Stops capture `id` and waits (bounded) for its file to be complete.
    pub fn stop(&self, id: u32) -> Result<TapReport, CaptureError> {
        let mut inner = self.lock();
        let Inner { points, taps, .. } = &mut *inner;
        let tap = taps
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or(CaptureError::NoSuchTap(id))?;
        release(points, tap);
        tap.reap(STOP_WAIT);
        Ok(tap.report())
    }

    /// Every capture of this run, running or done.
    pub fn list(&self) -> Vec<TapReport> {
        let mut inner = self.lock();
        inner
            .taps
            .iter_mut()
            .map(|t| {
                t.reap(Duration::ZERO);
                t.report()
            })
            .collect()
    }

    /// Ends every capture once the lcores have stopped (they let go of their rings when they
    /// end) and reports them all.
    pub fn finish(&self) -> Vec<TapReport> {
        let mut inner = self.lock();
        let Inner { points, taps, .. } = &mut *inner;
        for tap in taps.iter_mut() {
            release(points, tap);
            tap.reap(STOP_WAIT);
        }
        taps.iter().map(TapEntry::report).collect()
    }

    /// The lcore side of tap point `port`/`queue`/`dir`, with the capture asked for before
    /// the lcores started, if any: wrap the queue in [`super::TapRx`] or [`super::TapTx`]
    /// with it. (The forwarder does this for every queue its lcores poll.)
    pub fn attach(&self, port: &str, queue: u16, dir: Direction) -> Tap {
        let (tx, rx) = rtrb::RingBuffer::new(CMD_SLOTS);
        let mut inner = self.lock();
        let point = inner
            .points
            .iter_mut()
            .find(|p| p.port == port && p.queue == queue && p.dir == dir);
        match point {
            Some(p) => {
                p.cmds = Some(tx);
                Tap::new(rx, p.pending.take())
            }
            None => Tap::new(rx, None),
        }
    }

    /// A tap that never captures, for a run without a capture control.
    pub(crate) fn off() -> Tap {
        Tap::new(rtrb::RingBuffer::new(1).1, None)
    }

    /// A one-line command, for a control socket: `list`, `start,PORT[/qN][:rx|tx|both],FILE`
    /// or `stop,ID`. The reply is the capture(s) concerned, as JSON.
    pub fn command(&self, line: &str) -> Result<serde_json::Value, CaptureError> {
        let mut args = line.trim().splitn(3, ',');
        let bad = || CaptureError::Command(line.to_string());
        match (args.next().unwrap_or(""), args.next(), args.next()) {
            ("list" | "", None, None) => Ok(json(&self.list())),
            ("start", Some(spec), Some(path)) if !path.is_empty() => {
                let id = self.start(&PointSpec::parse(spec)?, Path::new(path))?;
                let now = self.list().into_iter().find(|t| t.id == id);
                Ok(json(&now))
            }
            ("stop", Some(id), None) => {
                let id = id.trim().parse().map_err(|_| bad())?;
                Ok(json(&self.stop(id)?))
            }
            _ => Err(bad()),
        }
    }
}

/// A reply as JSON (the reply types always serialise).
fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Tells the lcores of `tap` to stop and frees its points; a capture still pending (its lcore
/// never started) is dropped, which ends its ring.
fn release(points: &mut [Point], tap: &TapEntry) {
    for &i in &tap.at {
        let p = &mut points[i];
        if p.tap != Some(tap.id) {
            continue;
        }
        p.tap = None;
        p.pending = None;
        if let Some(c) = &mut p.cmds {
            let _ = c.push(TapCmd::Stop);
        }
    }
}

/// The points `spec` names, or an error listing those there are.
fn matching(points: &[Point], spec: &PointSpec) -> Result<Vec<usize>, CaptureError> {
    let at: Vec<usize> = (0..points.len())
        .filter(|&i| {
            let p = &points[i];
            spec.covers(&p.port, p.queue, p.dir)
        })
        .collect();
    if !at.is_empty() {
        return Ok(at);
    }
    let what = if !points.iter().any(|p| p.port == spec.port) {
        "port"
    } else if spec
        .queue
        .is_some_and(|q| !points.iter().any(|p| p.port == spec.port && p.queue == q))
    {
        "queue"
    } else {
        "direction"
    };
    let known: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    Err(CaptureError::Unknown {
        spec: spec.to_string(),
        what,
        known: if known.is_empty() {
            "none (no forwarding lcore polls a queue)".into()
        } else {
            known.join(", ")
        },
    })
}

/// Times the writer alone on `frames` records of `len` bytes already in its ring, written
/// to `/dev/null`: its cost per frame without waiting for an lcore (for the bench).
pub fn writer_cost(frames: usize, len: usize) -> Result<Duration, CaptureError> {
    let clock = WallClock::calibrate();
    let out = Writer::create(Path::new("/dev/null"), &["bench:rx".into()], 65535)?;
    let rec = super::tap::HEADER + len;
    let (mut tx, rx) = rtrb::RingBuffer::new(frames * rec);
    let mut one = vec![0u8; rec];
    one[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    one[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    for _ in 0..frames {
        let _ = tx.push_entire_slice(&one);
    }
    drop(tx);
    let lost = Arc::new(AtomicU64::new(0));
    let source = Source { ring: rx, lost };
    let w = Writer::new(out, vec![source], clock, u64::MAX, Arc::default());
    let t0 = Instant::now();
    let r = w.run();
    let spent = t0.elapsed();
    match r.error {
        Some(e) => Err(CaptureError::Setting(format!("writing to /dev/null: {e}"))),
        None => Ok(spent),
    }
}

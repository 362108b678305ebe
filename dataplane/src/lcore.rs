//! Lcores: polling threads pinned to one CPU each, and the loop they run.
//!
//! An lcore runs one [`Task`] in a busy loop until its [`StopHandle`] fires, then lets the task
//! drain what it holds (bounded in time), drops it (its buffers go back to their pools) and
//! hands its pool-cache contents back to the shared stores. The loop itself does nothing but
//! call [`Task::poll`] and read the stop flag: no allocation, lock, syscall or formatting.
//!
//! Before the loop the thread pins itself (`sched_setaffinity` via `core_affinity`) and
//! registers a free mempool lcore id (`sluice_mempool::lcore::register`), so that the buffers
//! it frees go to its own cache of each pool. Ids are taken first-free rather than from the
//! core number: two runtimes in one process (tests) never collide, and a core number above
//! the id range is no problem.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_mempool::lcore::{self, LcoreGuard, LcoreId, MAX_LCORES};
use sluice_pmd::PktPool;

use crate::error::Error;

/// The stop signal shared by every lcore of a runtime (and by whoever may stop it: the app's
/// signal handler, a timer, a test). Cloning gives another handle to the same flag.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// A fresh, unfired signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every lcore to stop (idempotent).
    pub fn stop(&self) {
        // Release: what the stopper wrote before (e.g. a generator's final count) is visible
        // to an lcore that sees the flag (Acquire in `is_stopped`).
        self.0.store(true, Ordering::Release);
    }

    /// Whether the signal fired.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// The flag itself, for `signal_hook::flag::register` (the app installs the handler).
    pub fn flag(&self) -> &Arc<AtomicBool> {
        &self.0
    }
}

/// The work of one lcore: called in a busy loop until stop, then drained.
pub trait Task: Send + 'static {
    /// One iteration: poll queues and rings, move what is there. Returns how many packets it
    /// handled (0: an idle poll). Must not block, allocate, lock or format.
    fn poll(&mut self) -> usize;

    /// Called repeatedly after the stop signal, until it returns `true` or the drain timeout
    /// passes: deliver what is still in flight (held transmit batches, upstream rings).
    /// Whatever is left when the task is dropped goes back to its pool.
    fn drain(&mut self) -> bool {
        true
    }
}

/// Two tasks on one lcore, polled in turn (a generator and a sink sharing a core: two busy
/// threads on one core would each get only time slices).
impl<A: Task, B: Task> Task for (A, B) {
    #[inline]
    fn poll(&mut self) -> usize {
        self.0.poll() + self.1.poll()
    }

    fn drain(&mut self) -> bool {
        // Both, every time: `&&` would starve the second while the first drains.
        let a = self.0.drain();
        let b = self.1.drain();
        a && b
    }
}

/// Loop counters of one lcore, written by it, read by the stats thread.
#[derive(Debug, Default)]
pub struct LcoreCounters {
    polls: AtomicU64,
    busy: AtomicU64,
}

impl LcoreCounters {
    /// Loop iterations so far, and how many of them handled at least one packet.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.polls.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed),
        )
    }
}

/// Where and how an lcore runs.
#[derive(Debug, Clone)]
pub struct LcoreConfig {
    /// A name for messages and stats ("lcore 1 (rtc)").
    pub name: String,
    /// The CPU to pin to; `None` leaves the thread unpinned (tests on small machines).
    pub core: Option<usize>,
    /// Pools whose lcore cache is handed back when the lcore ends.
    pub pools: Vec<PktPool>,
    /// How long [`Task::drain`] may take after the stop signal.
    pub drain_timeout: Duration,
}

/// The CPUs this process may run on, in increasing order.
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// `[0, 1, 2, 5]` as `0-2,5`.
pub fn format_cores(cores: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cores.len() {
        let start = cores[i];
        while i + 1 < cores.len() && cores[i + 1] == cores[i] + 1 {
            i += 1;
        }
        out.push(if cores[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", cores[i])
        });
        i += 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

/// Checks that `core` exists here, for an early, clear error before any thread starts.
pub fn check_core(lcore: &str, core: usize) -> Result<(), Error> {
    let cores = available_cores();
    if cores.contains(&core) {
        Ok(())
    } else {
        Err(Error::NoSuchCore {
            lcore: lcore.to_string(),
            core,
            available: format_cores(&cores),
        })
    }
}

/// Registers the calling thread under the first free mempool lcore id.
fn register_any(name: &str) -> Result<LcoreGuard, Error> {
    (0..MAX_LCORES)
        .filter_map(LcoreId::new)
        .find_map(|id| lcore::register(id).ok())
        .ok_or_else(|| Error::NoLcoreId {
            lcore: name.to_string(),
            max: MAX_LCORES,
        })
}

/// A started lcore.
#[derive(Debug)]
pub struct Lcore {
    name: String,
    core: Option<usize>,
    counters: Arc<LcoreCounters>,
    finished: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Sets `finished` when the thread ends, also by unwinding.
struct FinishedOnDrop(Arc<AtomicBool>);

impl Drop for FinishedOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// How long a new thread may take to pin itself and register.
const START_TIMEOUT: Duration = Duration::from_secs(5);

impl Lcore {
    /// Starts a thread that pins itself, registers, and runs `task` until `stop` fires.
    /// Returns once the thread is pinned and registered, or with the reason it could not be.
    pub fn spawn<T: Task>(cfg: LcoreConfig, task: T, stop: StopHandle) -> Result<Lcore, Error> {
        if let Some(core) = cfg.core {
            check_core(&cfg.name, core)?;
        }
        let counters = Arc::new(LcoreCounters::default());
        let finished = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::sync_channel::<Result<(), Error>>(1);
        let (name, core) = (cfg.name.clone(), cfg.core);
        let thread = {
            let counters = counters.clone();
            let finished = FinishedOnDrop(finished.clone());
            std::thread::Builder::new()
                .name(thread_name(&cfg.name))
                .spawn(move || {
                    let _finished = finished;
                    let guard = match start(&cfg) {
                        Ok(g) => g,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok(()));
                    run(task, &stop, &counters, cfg.drain_timeout);
                    for pool in &cfg.pools {
                        pool.flush_cache();
                    }
                    drop(guard);
                })
                .map_err(|source| Error::Spawn {
                    lcore: name.clone(),
                    source,
                })?
        };
        let mut lcore = Lcore {
            name,
            core,
            counters,
            finished,
            thread: Some(thread),
        };
        match started_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => Ok(lcore),
            Ok(Err(e)) => {
                // The start error says more than how the thread ended.
                let _ = lcore.join_now();
                Err(e)
            }
            Err(_) => Err(Error::Hung {
                lcore: lcore.name.clone(),
                waited: START_TIMEOUT,
            }),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The core it is pinned to.
    pub fn core(&self) -> Option<usize> {
        self.core
    }

    /// Its loop counters.
    pub fn counters(&self) -> &Arc<LcoreCounters> {
        &self.counters
    }

    /// Whether its thread has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Joins a thread known to have ended; reports a panic.
    pub(crate) fn join_now(&mut self) -> Result<(), Error> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(panic)) => Err(Error::Panicked {
                lcore: self.name.clone(),
                message: panic_message(panic.as_ref()),
            }),
            _ => Ok(()),
        }
    }
}

/// Thread names are truncated to 15 bytes by Linux; keep the informative end.
fn thread_name(name: &str) -> String {
    let short: String = name.chars().filter(|c| !c.is_whitespace()).collect();
    short.chars().take(15).collect()
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".into()
    }
}

/// Pins and registers the calling thread.
fn start(cfg: &LcoreConfig) -> Result<LcoreGuard, Error> {
    if let Some(core) = cfg.core
        && !core_affinity::set_for_current(core_affinity::CoreId { id: core })
    {
        return Err(Error::Pin {
            lcore: cfg.name.clone(),
            core,
        });
    }
    register_any(&cfg.name)
}

/// The busy loop and the drain.
fn run<T: Task>(mut task: T, stop: &StopHandle, counters: &LcoreCounters, drain: Duration) {
    let (mut polls, mut busy) = (0u64, 0u64);
    while !stop.is_stopped() {
        let n = task.poll();
        polls += 1;
        busy += u64::from(n > 0);
        // Published every 1024 iterations: the stats thread reads once a second, and a
        // store per iteration would cost more than the read is worth.
        if polls & 1023 == 0 {
            counters.polls.store(polls, Ordering::Relaxed);
            counters.busy.store(busy, Ordering::Relaxed);
        }
    }
    counters.polls.store(polls, Ordering::Relaxed);
    counters.busy.store(busy, Ordering::Relaxed);
    let deadline = Instant::now() + drain;
    while !task.drain() && Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_read_like_taskset() {
        assert_eq!(format_cores(&[0, 1]), "0-1");
        assert_eq!(format_cores(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(format_cores(&[3]), "3");
        assert_eq!(format_cores(&[]), "none");
    }

    #[test]
    fn a_missing_core_is_named_with_the_cores_there_are() {
        let e = check_core("lcore x", 4096).unwrap_err().to_string();
        assert!(e.starts_with("lcore x: core 4096 does not exist"), "{e}");
        assert!(e.contains(&format_cores(&available_cores())), "{e}");
        assert!(check_core("lcore x", 0).is_ok());
    }

    struct Count(Arc<AtomicU64>);
    impl Task for Count {
        fn poll(&mut self) -> usize {
            self.0.fetch_add(1, Ordering::Relaxed);
            1
        }
    }

    #[test]
    fn an_lcore_runs_pinned_until_stopped() {
        let stop = StopHandle::new();
        let n = Arc::new(AtomicU64::new(0));
        let cfg = LcoreConfig {
            name: "lcore t".into(),
            core: Some(0),
            pools: vec![],
            drain_timeout: Duration::from_millis(10),
        };
        let mut l = Lcore::spawn(cfg, Count(n.clone()), stop.clone()).unwrap();
        while n.load(Ordering::Relaxed) < 1000 {
            std::thread::yield_now();
        }
        stop.stop();
        while !l.is_finished() {
            std::thread::yield_now();
        }
        l.join_now().unwrap();
        let (polls, busy) = l.counters().snapshot();
        assert_eq!(polls, busy);
        assert_eq!(polls, n.load(Ordering::Relaxed));
    }
}

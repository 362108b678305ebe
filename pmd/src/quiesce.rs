//! [`DeviceHold`]: the one rule of device teardown in this crate — memory a device was given
//! is freed only after the device has stopped.
//!
//! A device reads and writes what the driver gave it (rings, queues, command pages, posted
//! buffers, the IOMMU mappings of its pools) until its owner stops it: a virtio reset read
//! back as 0 (virtio 1.2 §2.4), an NVMe controller whose CSTS.RDY followed CC.EN to 0 (NVMe
//! 1.4 §7.6.2) or a queue the controller deleted, a vhost-user backend that gave its rings
//! back (`GET_VRING_BASE`) or whose connection has ended (the rule and why in
//! [`transport::vhost_user`](crate::virtio::transport::vhost_user)).
//! Whatever the driver lets go of before then is [`keep`](DeviceHold::keep)t by a hold; when
//! the owner [confirms the stop](DeviceHold::confirm_stopped) the hold releases it, newest
//! first (buffers before the pool mapping they sit in). A hold dropped without that
//! confirmation (the reset timed out, the device is wedged) leaks what it keeps, with a
//! warning: a device that may still write into memory must never see it reused.
//!
//! The virtio-net port keeps one hold for its device (its queues park their rings and posted
//! buffers there; the last handle resets the device). The NVMe controller keeps one for the
//! admin queue and scratch pages and one per I/O queue pair, confirmed when the queue is
//! deleted or the controller disabled.
//!
//! ```
//! use std::sync::Arc;
//! use sluice_pmd::quiesce::DeviceHold;
//!
//! let hold = DeviceHold::new("virtio 0000:00:02.0");
//! let ring = Arc::new([0u8; 64]); // memory the device was given
//! hold.keep(ring.clone());
//! drop(ring); // the driver is done with it; the device may not be
//! assert_eq!(hold.kept(), 1);
//! // ... reset the device and read status 0 back ...
//! hold.confirm_stopped(); // now it goes
//! assert_eq!(hold.kept(), 0);
//! hold.keep(vec![1u8]); // after the stop, freed at once
//! assert_eq!(hold.kept(), 0);
//! ```

use std::sync::{Mutex, MutexGuard};

/// What a device may still touch, kept until its owner confirms the device stopped.
///
/// Shared (`Arc<DeviceHold>`) between the owner, which confirms, and whoever lets go of
/// device-visible things (queue handles on other threads). Control path only: every call
/// takes a lock and [`keep`](Self::keep) allocates.
pub struct DeviceHold {
    /// The device or queue, for the leak warning ("virtio 0000:00:02.0", "NVMe I/O queue 3").
    what: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    stopped: bool,
    /// In the order kept; released newest first.
    kept: Vec<Box<dyn Send>>,
}

impl DeviceHold {
    /// An empty hold for a running device; `what` names it in the leak warning.
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in the critical sections can leave the state half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `thing` (ring memory, buffers, a mapping: anything whose drop would hand memory
    /// back) until the device is confirmed stopped; drops it now if it already is.
    pub fn keep<T: Send + 'static>(&self, thing: T) {
        if size_of::<T>() == 0 && !std::mem::needs_drop::<T>() {
            // Nothing a device could reach, nothing to hand back.
            return;
        }
        let mut s = self.lock();
        if s.stopped {
            drop(s);
            drop(thing);
            return;
        }
        s.kept.push(Box::new(thing));
    }

    /// The owner saw the device stop: releases everything kept, newest first, and from now
    /// on [`keep`](Self::keep) drops at once. Call it only on the device's own confirmation
    /// (a status read back, not a command merely sent). Idempotent.
    pub fn confirm_stopped(&self) {
        let kept = {
            let mut s = self.lock();
            s.stopped = true;
            std::mem::take(&mut s.kept)
        };
        // Outside the lock: a released thing may itself be a handle that keeps into a hold.
        for thing in kept.into_iter().rev() {
            drop(thing);
        }
    }

    /// Whether the owner confirmed the stop.
    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// How many things are kept now.
    pub fn kept(&self) -> usize {
        self.lock().kept.len()
    }
}

impl Drop for DeviceHold {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if s.stopped || s.kept.is_empty() {
            return;
        }
        eprintln!(
            "sluice-pmd: warning: {} was not confirmed stopped; leaking the {} things it may \
             still read or write (ring memory, buffers, mappings)",
            self.what,
            s.kept.len()
        );
        std::mem::forget(std::mem::take(&mut s.kept));
    }
}

impl std::fmt::Debug for DeviceHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("DeviceHold")
            .field("what", &self.what)
            .field("stopped", &s.stopped)
            .field("kept", &s.kept.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records its drop in a shared log, as the number `n`.
    struct Probe(u32, Arc<Mutex<Vec<u32>>>);

    impl Drop for Probe {
        fn drop(&mut self) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    #[test]
    fn kept_things_go_at_the_confirmation_newest_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let hold = DeviceHold::new("test device");
        for n in 1..=3 {
            hold.keep(Probe(n, log.clone()));
        }
        assert!(
            log.lock().unwrap().is_empty(),
            "nothing goes before the stop"
        );
        assert!(!hold.is_stopped());
        hold.confirm_stopped();
        assert_eq!(*log.lock().unwrap(), [3, 2, 1]);
        assert!(hold.is_stopped());
        hold.keep(Probe(4, log.clone()));
        assert_eq!(
            *log.lock().unwrap(),
            [3, 2, 1, 4],
            "after the stop: at once"
        );
        hold.confirm_stopped();
        drop(hold);
        assert_eq!(log.lock().unwrap().len(), 4, "nothing dropped twice");
    }

    #[test]
    fn an_unconfirmed_hold_leaks_what_it_keeps() {
        let drops = Arc::new(AtomicUsize::new(0));
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let hold = DeviceHold::new("a wedged device");
        hold.keep(Counted(drops.clone()));
        hold.keep(Counted(drops.clone()));
        drop(hold);
        assert_eq!(drops.load(Ordering::Relaxed), 0, "leaked, never dropped");
        assert_eq!(
            Arc::strong_count(&drops),
            3,
            "the leaked handles are still out"
        );
    }

    #[test]
    fn a_released_thing_may_keep_into_the_same_hold() {
        // A queue handle released by the hold parks its own memory in the hold as it drops.
        struct Parker(Arc<DeviceHold>);
        impl Drop for Parker {
            fn drop(&mut self) {
                self.0.keep(vec![0u8; 16]);
            }
        }
        let hold = Arc::new(DeviceHold::new("test device"));
        hold.keep(Parker(hold.clone()));
        hold.confirm_stopped();
        assert_eq!(hold.kept(), 0);
        assert_eq!(Arc::strong_count(&hold), 1);
    }
}

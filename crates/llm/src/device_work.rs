//! What a generation asks of the device, counted where it happens: compute dispatches (every
//! launch of the CubeCL kernels, and the copies they make to get contiguous inputs), writes from
//! the host (token ids, rope tables) and blocking reads back to the host (logits, sampled ids).
//!
//! The kernel seam's operations are functions of the backend type, with no instance to hold a
//! counter, so the counts live in a thread-local: a model runs its kernels on the thread that
//! calls it (the worker in a browser), and the [`crate::Generator`] takes the difference around
//! its own calls, so two models on two threads (parallel tests) never mix their counts.
//!
//! Submits are not counted here: CubeCL (0.11) submits inside its stream, unseen by callers. Its
//! rule is known: each host write and each read submits the work queued before it, and a
//! stream submits by itself every `tasks_max` (32) dispatches; BENCHMARKS.md derives submits
//! from these counts by that rule.

use std::cell::Cell;

/// Counts of device work, over some span (a prefill, a decode run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceWork {
    /// Compute dispatches on a GPU (0 on the CPU backend, which runs its kernels in place).
    pub dispatches: u64,
    /// Host-to-device writes made while running tokens.
    pub uploads: u64,
    pub upload_bytes: u64,
    /// Reads back to the host that the generator waits for.
    pub readbacks: u64,
    pub readback_bytes: u64,
    /// Those of the reads during which the device had nothing else queued: it idles while the
    /// host waits. A read of a decode burst awaited after the next burst went in does not count.
    pub blocking_readbacks: u64,
}

impl DeviceWork {
    /// `self - earlier`, for counts taken around a span.
    pub fn since(self, earlier: DeviceWork) -> DeviceWork {
        DeviceWork {
            dispatches: self.dispatches - earlier.dispatches,
            uploads: self.uploads - earlier.uploads,
            upload_bytes: self.upload_bytes - earlier.upload_bytes,
            readbacks: self.readbacks - earlier.readbacks,
            readback_bytes: self.readback_bytes - earlier.readback_bytes,
            blocking_readbacks: self.blocking_readbacks - earlier.blocking_readbacks,
        }
    }

    pub fn add(&mut self, other: DeviceWork) {
        self.dispatches += other.dispatches;
        self.uploads += other.uploads;
        self.upload_bytes += other.upload_bytes;
        self.readbacks += other.readbacks;
        self.readback_bytes += other.readback_bytes;
        self.blocking_readbacks += other.blocking_readbacks;
    }

    /// Each count divided by `tokens` (zeros for no tokens).
    pub fn per_token(&self, tokens: usize) -> DeviceWorkPerToken {
        let per = |count: u64| if tokens == 0 { 0.0 } else { count as f64 / tokens as f64 };
        DeviceWorkPerToken {
            dispatches: per(self.dispatches),
            uploads: per(self.uploads),
            upload_bytes: per(self.upload_bytes),
            readbacks: per(self.readbacks),
            readback_bytes: per(self.readback_bytes),
            blocking_readbacks: per(self.blocking_readbacks),
        }
    }
}

/// [`DeviceWork`] per token run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeviceWorkPerToken {
    pub dispatches: f64,
    pub uploads: f64,
    pub upload_bytes: f64,
    pub readbacks: f64,
    pub readback_bytes: f64,
    pub blocking_readbacks: f64,
}

thread_local! {
    static COUNTS: Cell<DeviceWork> = const { Cell::new(DeviceWork { dispatches: 0, uploads: 0, upload_bytes: 0, readbacks: 0, readback_bytes: 0, blocking_readbacks: 0 }) };
}

fn update(change: impl FnOnce(&mut DeviceWork)) {
    COUNTS.with(|c| {
        let mut counts = c.get();
        change(&mut counts);
        c.set(counts);
    });
}

/// Everything counted on this thread so far.
pub fn counted() -> DeviceWork {
    COUNTS.with(Cell::get)
}

pub(crate) fn count_dispatch() {
    update(|c| c.dispatches += 1);
}

pub(crate) fn count_upload(bytes: usize) {
    update(|c| {
        c.uploads += 1;
        c.upload_bytes += bytes as u64;
    });
}

/// A read back of `bytes`; `blocking` when the device had no work queued behind it.
pub(crate) fn count_readback(bytes: usize, blocking: bool) {
    update(|c| {
        c.readbacks += 1;
        c.readback_bytes += bytes as u64;
        c.blocking_readbacks += u64::from(blocking);
    });
}

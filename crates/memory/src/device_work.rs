//! GPU dispatches of the embedder, counted where CubeCL issues them: every kernel launch (burn's
//! own operations and this crate's kernels alike, and the copies that make a tensor contiguous),
//! through CubeCL's launch observer, which is told of each launch on the thread that issues it.
//!
//! The observer is process-wide (CubeCL holds one), so a count is kept per thread: the
//! [`DispatchCounter`] counts the launches of the thread that started it, and two counters on
//! two threads each see their own. A second counter started while one runs replaces it until
//! dropped (CubeCL's one slot); the bench and the tests start one at a time.
//!
//! On the CPU backend nothing is dispatched and the count stays 0.

/// Counts the GPU kernel launches issued by this thread from [`DispatchCounter::start`] until
/// it is dropped.
pub struct DispatchCounter {
    #[cfg(any(feature = "wgpu", feature = "webgpu"))]
    inner: observer::Counting,
}

impl DispatchCounter {
    pub fn start() -> Self {
        Self {
            #[cfg(any(feature = "wgpu", feature = "webgpu"))]
            inner: observer::Counting::start(),
        }
    }

    /// Launches counted so far.
    pub fn dispatches(&self) -> u64 {
        #[cfg(any(feature = "wgpu", feature = "webgpu"))]
        return self.inner.count();
        #[cfg(not(any(feature = "wgpu", feature = "webgpu")))]
        0
    }
}

#[cfg(any(feature = "wgpu", feature = "webgpu"))]
mod observer {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::thread::ThreadId;

    use cubecl::logging::{LaunchObservation, LaunchObserver};

    struct ThreadLaunches {
        thread: ThreadId,
        count: AtomicU64,
    }

    impl LaunchObserver for ThreadLaunches {
        fn launched(&self, _kernel: &'static str) {
            if std::thread::current().id() == self.thread {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) struct Counting {
        launches: Arc<ThreadLaunches>,
        // Dropped with the counter: the observer is uninstalled, the previous one put back.
        _observation: LaunchObservation,
    }

    impl Counting {
        pub(super) fn start() -> Self {
            let launches = Arc::new(ThreadLaunches { thread: std::thread::current().id(), count: AtomicU64::new(0) });
            let observation = LaunchObservation::new(launches.clone());
            Self { launches, _observation: observation }
        }

        pub(super) fn count(&self) -> u64 {
            self.launches.count.load(Ordering::Relaxed)
        }
    }
}

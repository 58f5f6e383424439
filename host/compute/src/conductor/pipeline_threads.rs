//! The threads the scheduler's pipelines run on: one per core, started
//! with the conductor, each at a lower CPU priority (nice
//! [`PIPELINE_NICE`]) than the rest of the controller.
//!
//! A pipeline is CPU-bound and a decision waits for it anyway; what must
//! not wait is the control plane around it, above all a transaction that
//! holds the database's one writer between two statements. At the same
//! priority as the pipelines, on a busy machine, such a transaction's next
//! statement queued behind them and every other decision's claim waited
//! for it (measured: `bench cloud`, 5,000 hosts, claim stage 61–77 ms →
//! 52–67 ms). A nice value only lowers a share under contention: on an idle
//! core a pipeline runs at full speed. A plugin's deadline counts the CPU
//! time of its call (`novum_plugin_host::limits::CallBudget`), so a
//! pipeline kept waiting for a core does not fail its plugins.
//!
//! Each run also reports the CPU time its thread spent on it (the
//! pipeline-only cost a benchmark compares the whole decision with, which
//! waiting for a core does not inflate).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use novum_plugin_host::limits::thread_cpu_time;

/// The nice value of the pipeline threads (0 is the controller's own;
/// 19 the lowest priority).
pub const PIPELINE_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads running pipelines in the order they are handed in.
#[derive(Debug)]
pub struct PipelineThreads {
    jobs: mpsc::Sender<Job>,
}

/// The pipeline threads are gone (a thread could not be started).
#[derive(Debug, thiserror::Error)]
#[error("the scheduler's pipeline threads are gone")]
pub struct ThreadsGone;

impl PipelineThreads {
    /// Starts `count` threads (at least one), each entered in `runtime`
    /// (a plugin's WASI calls block on it).
    pub fn start(count: usize, runtime: Option<tokio::runtime::Handle>) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..count.max(1) {
            let receiver = Arc::clone(&receiver);
            let runtime = runtime.clone();
            let started = std::thread::Builder::new()
                .name(format!("pipeline-{index}"))
                .spawn(move || {
                    let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                    lower_priority();
                    loop {
                        let job = receiver
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(),
                            Err(mpsc::RecvError) => return,
                        }
                    }
                });
            if let Err(error) = started {
                tracing::error!(%error, "cannot start a pipeline thread");
            }
        }
        Self { jobs: sender }
    }

    /// Runs `work` on a pipeline thread; its answer, with the CPU time the
    /// thread spent on it. A panic in `work` is its answer's loss only.
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<(R, Duration), ThreadsGone> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let before = thread_cpu_time();
            if let Ok(result) = catch_unwind(AssertUnwindSafe(work)) {
                let _ = answer.send((result, thread_cpu_time().saturating_sub(before)));
            }
        });
        self.jobs.send(job).map_err(|_| ThreadsGone)?;
        answered.await.map_err(|_| ThreadsGone)
    }
}

/// Lowers the calling thread's priority to [`PIPELINE_NICE`] (Linux: a nice
/// value is per thread). Failing that, it runs at the controller's.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), PIPELINE_NICE) {
        tracing::warn!(%error, "cannot lower a pipeline thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_lowered_thread_and_its_cpu_time_is_counted() {
        let threads = PipelineThreads::start(2, Some(tokio::runtime::Handle::current()));
        let (nice, spent) = threads
            .run(|| {
                let deadline = std::time::Instant::now() + Duration::from_millis(30);
                while std::time::Instant::now() < deadline {
                    std::hint::black_box(0u64);
                }
                rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            })
            .await
            .expect("answered");
        assert_eq!(nice.expect("priority"), PIPELINE_NICE);
        assert!(
            spent >= Duration::from_millis(10) && spent <= Duration::from_secs(5),
            "{spent:?}"
        );
    }

    #[tokio::test]
    async fn a_panicking_run_loses_its_answer_only() {
        let threads = PipelineThreads::start(1, None);
        let lost = threads.run(|| -> u32 { panic!("plugin host bug") }).await;
        assert!(lost.is_err());
        let (answer, _) = threads.run(|| 7).await.expect("the thread lives on");
        assert_eq!(answer, 7);
    }
}

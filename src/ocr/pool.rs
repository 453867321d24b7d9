//! A bounded pool of OCR worker threads.
//!
//! OCR takes hundreds of milliseconds of CPU: it must not run on the async runtime, and
//! bursts must not pile up. `workers` dedicated threads take jobs from a queue; a semaphore
//! admits at most `workers + queue` jobs at once (running or waiting). A job beyond that is
//! refused at once with [`PoolError::Busy`], so the caller can tell the user to try again in a
//! moment instead of making them wait behind a backlog. Each worker gives `rten`
//! `threads_per_worker` threads (see [`OcrParams::threads`](super::OcrParams)); choose
//! `workers × threads_per_worker` ≤ the cores.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Why a job did not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    #[error("the OCR queue is full")]
    Busy,
    /// The job panicked or the pool shut down.
    #[error("the OCR worker stopped before finishing the job")]
    Stopped,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A place held in an [`OcrPool`].
#[derive(Debug)]
pub struct Slot {
    permit: OwnedSemaphorePermit,
    jobs: SyncSender<Job>,
}

impl Slot {
    /// Runs `job` on a worker and waits for its result without blocking the runtime.
    pub async fn run<T, F>(self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Slot { permit, jobs } = self;
        let (done, result) = oneshot::channel();
        let mut finish = Finish { permit: Some(permit), done: Some(done) };
        let wrapped: Job = Box::new(move || {
            let out = job();
            finish.send(out);
        });
        jobs.try_send(wrapped).map_err(|_| PoolError::Stopped)?;
        result.await.map_err(|_| PoolError::Stopped)
    }
}

/// Frees the pool's place *before* the caller hears of the result (or of a panic, when this
/// is dropped while unwinding), so a caller that got its answer always finds room again.
struct Finish<T> {
    permit: Option<OwnedSemaphorePermit>,
    done: Option<oneshot::Sender<T>>,
}

impl<T> Finish<T> {
    fn send(&mut self, out: T) {
        self.permit.take();
        if let Some(done) = self.done.take() {
            let _ = done.send(out);
        }
    }
}

impl<T> Drop for Finish<T> {
    fn drop(&mut self) {
        self.permit.take();
        self.done.take();
    }
}

/// Worker threads behind a bounded queue. Dropping the pool lets the workers finish the
/// jobs queued and exit.
#[derive(Debug)]
pub struct OcrPool {
    jobs: SyncSender<Job>,
    admission: Arc<Semaphore>,
    capacity: usize,
    workers: usize,
}

impl OcrPool {
    /// Starts `workers` threads (at least one) with room for `queue` waiting jobs.
    pub fn new(workers: usize, queue: usize) -> OcrPool {
        let workers = workers.max(1);
        let capacity = workers + queue;
        // The semaphore admits at most `capacity` jobs, so `send` never blocks.
        let (jobs, receiver) = sync_channel::<Job>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..workers {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new().name(format!("wabot-ocr-{i}")).spawn(move || {
                loop {
                    // Take the next job, releasing the lock before running it.
                    let job = match receiver.lock() {
                        Ok(rx) => rx.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => {
                            // A panic drops the job's result sender: its caller gets `Stopped`,
                            // and this worker lives on.
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                                tracing::error!("an OCR job panicked");
                            }
                        }
                        Err(_) => break,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an OCR worker thread");
            }
        }
        OcrPool { jobs, admission: Arc::new(Semaphore::new(capacity)), capacity, workers }
    }

    /// Runs `job` on a worker and waits for its result without blocking the runtime; refused
    /// at once with [`PoolError::Busy`] when `workers + queue` jobs are already admitted.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.reserve()?.run(job).await
    }

    /// Takes a place in the pool now, to run a job later (after a download, say); refused at
    /// once with [`PoolError::Busy`] when the pool is full. The place is held until the job
    /// finishes or the [`Slot`] is dropped.
    pub fn reserve(&self) -> Result<Slot, PoolError> {
        let permit = Arc::clone(&self.admission).try_acquire_owned().map_err(|_| PoolError::Busy)?;
        Ok(Slot { permit, jobs: self.jobs.clone() })
    }

    /// Waits for a place in the pool, for work that must not be refused (photos accepted
    /// before a restart); waiters are served in order, before later [`OcrPool::reserve`]s.
    pub async fn reserve_waiting(&self) -> Result<Slot, PoolError> {
        let permit = Arc::clone(&self.admission).acquire_owned().await.map_err(|_| PoolError::Stopped)?;
        Ok(Slot { permit, jobs: self.jobs.clone() })
    }

    /// Places free now: jobs [`OcrPool::reserve`] would admit.
    pub fn available(&self) -> usize {
        self.admission.available_permits()
    }

    /// Jobs running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_job_runs_on_a_worker_thread() {
        let pool = OcrPool::new(1, 0);
        let name = pool.run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert_eq!(name.as_deref(), Some("wabot-ocr-0"));
    }

    #[tokio::test]
    async fn beyond_workers_and_queue_jobs_are_refused_at_once() {
        let pool = Arc::new(OcrPool::new(1, 1));
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut held = Vec::new();
        for _ in 0..2 {
            let (pool, gate) = (Arc::clone(&pool), Arc::clone(&gate));
            held.push(tokio::spawn(async move {
                pool.run(move || gate.lock().unwrap().recv_timeout(Duration::from_secs(10)).is_ok()).await
            }));
        }
        while pool.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| ()).await, Err(PoolError::Busy));
        release.send(()).unwrap();
        release.send(()).unwrap();
        for h in held {
            assert_eq!(h.await.unwrap(), Ok(true));
        }
        assert_eq!(pool.in_flight(), 0);
        assert_eq!(pool.run(|| 7).await, Ok(7), "room again once the jobs are done");
    }

    #[tokio::test]
    async fn a_waiting_reservation_gets_the_next_free_place_before_a_new_caller() {
        let pool = Arc::new(OcrPool::new(1, 0));
        let held = pool.reserve().unwrap();
        let waiting = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.reserve_waiting().await.unwrap().run(|| 5).await })
        };
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(matches!(pool.reserve(), Err(PoolError::Busy)), "the freed place went to the waiter");
        assert_eq!(waiting.await.unwrap(), Ok(5));
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_worker_survives_it() {
        let pool = OcrPool::new(1, 0);
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, Err(PoolError::Stopped));
        assert_eq!(pool.run(|| 1).await, Ok(1));
    }
}

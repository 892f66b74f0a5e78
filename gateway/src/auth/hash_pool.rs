//! A few threads of Roost's own for password hashing, and a bounded line in front of them.
//!
//! Each Argon2 hash takes 19 MiB. On tokio's blocking pool (up to 512 threads) successive hashes
//! land on ever different threads, and glibc keeps a heap arena per thread, each holding on to
//! its last 19 MiB: 100 sign-ups left Roost at 330–490 MB. Here only `workers` threads ever
//! hash, so at most that many arenas hold a hash's memory, and at most `workers + queue` hashes
//! are running or waiting at once; past that a request is refused at once (503, `Retry-After`)
//! rather than holding memory and a connection while it waits, so a flood of logins from many
//! addresses cannot grow the server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send>;

pub struct HashPool {
    jobs: mpsc::Sender<Job>,
    /// Hashes admitted and not yet finished (running or waiting for a thread).
    in_flight: Arc<AtomicUsize>,
    bound: usize,
}

/// The pool is full: `workers + queue` hashes are running or waiting.
#[derive(Debug)]
pub struct Busy;

/// A place in the pool, given back when dropped (when its job has run, or never will).
pub struct Admitted {
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    /// Starts `workers` threads (at least one); they end when the pool is dropped.
    pub fn start(workers: usize, queue: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..workers {
            let receiver = receiver.clone();
            std::thread::Builder::new().name(format!("roost-hash-{i}")).spawn(move || {
                loop {
                    // Held only while waiting for a job, never while hashing.
                    let job = receiver.lock().map_err(drop).and_then(|r| r.recv().map_err(drop));
                    match job {
                        // A panic ends that job (its caller sees `None`), not the thread.
                        Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                        Err(()) => return,
                    }
                }
            })?;
        }
        Ok(Self { jobs, in_flight: Arc::default(), bound: workers + queue })
    }

    /// A place for one hash, unless the pool is full.
    pub fn admit(&self) -> Result<Admitted, Busy> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.bound).then_some(n + 1))
            .map(|_| Admitted { in_flight: self.in_flight.clone() })
            .map_err(|_| Busy)
    }

    /// Runs `work` on a pool thread; the place is given back once it has run. `None` if the
    /// threads are gone (they only end with the pool) or `work` panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        admitted: Admitted,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let reply = Reply { admitted, tx };
            // Whoever asked has gone away (the client hung up): skip the 19 MiB and the CPU.
            if !reply.tx.is_closed() {
                reply.send(work());
            }
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

/// A job's place and its answer. Fields drop in order, so also when the work panics the place
/// is free before the caller hears: its next request finds it free.
struct Reply<T> {
    admitted: Admitted,
    tx: tokio::sync::oneshot::Sender<T>,
}

impl<T> Reply<T> {
    fn send(self, result: T) {
        let Reply { admitted, tx } = self;
        drop(admitted);
        let _ = tx.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_past_its_bound_and_frees_places_as_jobs_finish() {
        let pool = HashPool::start(1, 1).unwrap();
        let (first, second) = (pool.admit().unwrap(), pool.admit().unwrap());
        assert!(pool.admit().is_err(), "one running and one waiting is the bound");
        drop(second);
        assert_eq!(pool.run(first, || 6 * 7).await, Some(42));
        let places: Vec<_> = (0..2).map(|_| pool.admit().unwrap()).collect();
        assert!(pool.admit().is_err());
        drop(places);
        assert!(pool.admit().is_ok());
    }

    #[tokio::test]
    async fn a_panicking_job_gives_its_place_back_and_the_thread_goes_on() {
        let pool = HashPool::start(1, 0).unwrap();
        let result: Option<()> = pool.run(pool.admit().unwrap(), || panic!("boom")).await;
        assert_eq!(result, None);
        assert_eq!(pool.run(pool.admit().unwrap(), || "still here").await, Some("still here"));
    }
}

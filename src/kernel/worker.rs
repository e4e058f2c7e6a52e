//! A thread that lives inside one network namespace and runs what must
//! happen there: opening its netlink socket, reading and writing its
//! sysctls. Entering a namespace costs a setns (creating one, an unshare);
//! one thread per namespace pays it once, and never leaves: it ends when
//! the worker is dropped, which must happen before the namespace is
//! deleted (a thread inside a namespace keeps it alive).

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::netns;

type Job = Box<dyn FnOnce() + Send>;

/// The worker threads only wait and make a few syscalls.
const STACK_SIZE: usize = 256 * 1024;

pub struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// A worker inside the existing namespace `ns` (`""`: the process's).
    pub async fn enter(ns: &str) -> io::Result<Worker> {
        let ns = ns.to_string();
        Worker::start(move || netns::enter_here(&ns)).await
    }

    /// A worker that creates the named namespace `ns` and lives in it.
    pub async fn create(ns: &str) -> io::Result<Worker> {
        let ns = ns.to_string();
        Worker::start(move || netns::create_here(&ns)).await
    }

    /// Starts the thread, which first moves into its namespace; a thread
    /// whose move failed ends at once.
    async fn start(setup: impl FnOnce() -> io::Result<()> + Send + 'static) -> io::Result<Worker> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("netns-worker".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let setup = setup();
                let ready = setup.is_ok();
                let _ = ready_tx.send(setup);
                if ready {
                    for job in jobs_rx {
                        job();
                    }
                }
            })?;
        let worker = Worker {
            jobs: Some(jobs_tx),
            thread: Some(thread),
        };
        ready_rx
            .await
            .unwrap_or_else(|_| Err(io::Error::other("namespace worker died")))?;
        Ok(worker)
    }

    /// Runs `job` inside the namespace and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stopped = || io::Error::other("namespace worker stopped");
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(Box::new(move || {
                let _ = tx.send(job());
            }))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop; wait for it, so the
        // namespace is no longer held when this returns.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! The engine over the in-memory kernel, for the generated tests (no
//! root): a state dir of its own, a quiet progress, a lab-mode engine.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use netloom::engine::fake::FakeKernel;
use netloom::engine::{Engine, Options, Progress};
use netloom::model::{Change, Mode};

pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: usize) {}
    fn advance(&self, _: &Change) {}
    fn finish(&self) {}
}

pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A state dir of its own, removed at the end.
pub struct TempState(PathBuf);

impl TempState {
    pub fn new(test: &str) -> TempState {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("netloom-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempState(dir)
    }
}

impl Drop for TempState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn lab_engine(state: &TempState) -> Engine<FakeKernel> {
    let options = Options {
        mode: Mode::Lab,
        adopt: false,
        state_dir: state.0.clone(),
        lock_timeout: Duration::from_secs(1),
    };
    let kernel = FakeKernel::new();
    // What a kernel's fresh namespace reads for the sysctl the file may set.
    kernel.set_fresh_sysctl("net.ipv4.ip_forward", "0");
    Engine::with_kernel(kernel, options)
}

//! A progress bar while a plan runs, with the time taken and an estimate
//! of the time left: on a terminal only (nothing in logs or pipes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Output, report};
use crate::engine::Progress;
use crate::model::Change;

pub struct ProgressDisplay {
    bar: Option<ProgressBar>,
}

impl ProgressDisplay {
    pub fn new(output: Output) -> Self {
        let shown = output == Output::Human && std::io::stderr().is_terminal();
        ProgressDisplay {
            bar: shown.then(ProgressBar::hidden),
        }
    }
}

impl Progress for ProgressDisplay {
    fn start(&self, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed:>4} {bar:30} {pos}/{len} (about {eta} left) {wide_msg}",
                )
                .expect("a valid template"),
            );
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn advance(&self, change: &Change) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(report::change_line(change));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

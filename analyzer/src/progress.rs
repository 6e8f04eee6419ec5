//! A spinner on stderr for work that takes longer than a second: quick
//! runs print nothing, and it never shows when stderr is not a terminal
//! (indicatif hides it), so pipes and tests see clean output.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before the spinner appears.
const DELAY: Duration = Duration::from_secs(1);

pub struct Progress {
    bar: ProgressBar,
    done: Option<mpsc::Sender<()>>,
    timer: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts timing; the spinner shows `message` once a second has passed.
    pub fn start(message: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        let (done, wait) = mpsc::channel::<()>();
        let shown = bar.clone();
        let timer = std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(DELAY) {
                shown.set_draw_target(ProgressDrawTarget::stderr());
                shown.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Progress {
            bar,
            done: Some(done),
            timer: Some(timer),
        }
    }

    /// Says what is being done now.
    pub fn set(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    /// A line on stderr, above the spinner when it shows.
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Ends the timer before it shows anything, or clears the spinner.
        drop(self.done.take());
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_work_ends_at_once() {
        let started = std::time::Instant::now();
        let p = Progress::start("working");
        p.set("still working");
        drop(p);
        assert!(started.elapsed() < DELAY);
    }
}

//! Progress of long work — embedding a large FAQ, an evaluation: a bar on a terminal
//! (indicatif), progress lines in the log otherwise.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Work shorter than this shows nothing in the log.
const QUIET_FOR: Duration = Duration::from_secs(2);
/// At most one log line per this much time.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A progress callback `(done, total)` for work named `what` ("embedding the FAQ"): a bar
/// on standard error when it is a terminal, else an info line every few seconds once the
/// work has lasted a moment, and one at the end. Safe to call from many threads.
pub fn reporter(what: &'static str) -> Arc<dyn Fn(usize, usize) + Send + Sync> {
    let terminal = std::io::stderr().is_terminal();
    let state = Mutex::new(State { bar: None, started: None, logged: None });
    Arc::new(move |done, total| {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let started = *s.started.get_or_insert(now);
        if terminal {
            let bar = s.bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(total as u64);
                let style = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
                    .map(|st| st.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_message(what);
                bar
            });
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if done >= total {
                bar.finish();
            }
            return;
        }
        let elapsed = now - started;
        let due = s.logged.is_none_or(|at| now - at >= LOG_EVERY);
        if elapsed >= QUIET_FOR && (due || done >= total) {
            s.logged = Some(now);
            tracing::info!(done, total, seconds = elapsed.as_secs(), "{what}");
        }
    })
}

struct State {
    bar: Option<ProgressBar>,
    started: Option<Instant>,
    logged: Option<Instant>,
}

//! Progress of long jobs (testnet generation, funding, signing, load runs, image builds).
//!
//! On a terminal (stderr is a TTY) a job shows an [`indicatif`] bar, redrawn in place at most
//! 10 times a second. Anywhere else (CI logs, pipes, `2>file`) it prints plain lines: one when
//! the job starts, one each time it crosses a tenth of its length (at most 10 lines however
//! long the job), each message it is given, and one when it finishes, with the elapsed time.
//! A hidden progress prints nothing (library callers, tests).
//!
//! Progress always goes to stderr, so stdout stays clean for `--json` output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How often a bar redraws at most, per second (indicatif's draw rate limit).
const BAR_REFRESH_HZ: u8 = 10;
/// Plain-line mode prints a line each time the position crosses `len / LINE_STEPS`.
const LINE_STEPS: u64 = 10;

/// A progress report for one job; cheap to clone and safe to update from many threads.
#[derive(Clone)]
pub struct Progress(Arc<Inner>);

struct Inner {
    label: String,
    started: Instant,
    mode: Mode,
}

enum Mode {
    Hidden,
    Bar(ProgressBar),
    Lines {
        /// Job length in units (`None`: unknown, only messages and the end are printed).
        len: Option<u64>,
        pos: AtomicU64,
        /// Highest step (`pos * LINE_STEPS / len`) already printed.
        step_printed: AtomicU64,
        out: Mutex<Box<dyn Write + Send>>,
    },
}

impl Progress {
    /// A progress that prints nothing.
    pub fn hidden() -> Self {
        Progress(Arc::new(Inner {
            label: String::new(),
            started: Instant::now(),
            mode: Mode::Hidden,
        }))
    }

    /// A progress for a job of `len` units (`None`: unknown length, a spinner on a terminal),
    /// shown if `enabled`: a bar when stderr is a terminal, plain lines on stderr otherwise.
    pub fn new(enabled: bool, label: &str, len: Option<u64>) -> Self {
        if !enabled {
            return Self::hidden();
        }
        if std::io::stderr().is_terminal() {
            Self::bar(label, len)
        } else {
            Self::lines(label, len, Box::new(std::io::stderr()))
        }
    }

    /// A bar on stderr (whatever stderr is).
    pub fn bar(label: &str, len: Option<u64>) -> Self {
        let target = ProgressDrawTarget::stderr_with_hz(BAR_REFRESH_HZ);
        let bar = match len {
            Some(n) => {
                let b = ProgressBar::with_draw_target(Some(n), target);
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta}) {msg}",
                    )
                    .expect("static template is valid"),
                );
                b
            }
            None => {
                let b = ProgressBar::with_draw_target(None, target);
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
                        .expect("static template is valid"),
                );
                b.enable_steady_tick(std::time::Duration::from_millis(200));
                b
            }
        };
        bar.set_prefix(label.to_string());
        Progress(Arc::new(Inner {
            label: label.to_string(),
            started: Instant::now(),
            mode: Mode::Bar(bar),
        }))
    }

    /// Plain lines written to `out` (stderr in [`Progress::new`]; a buffer in tests).
    pub fn lines(label: &str, len: Option<u64>, mut out: Box<dyn Write + Send>) -> Self {
        let _ = match len {
            Some(n) => writeln!(out, "{label}: 0/{n}"),
            None => writeln!(out, "{label}: started"),
        };
        Progress(Arc::new(Inner {
            label: label.to_string(),
            started: Instant::now(),
            mode: Mode::Lines {
                len,
                pos: AtomicU64::new(0),
                step_printed: AtomicU64::new(0),
                out: Mutex::new(out),
            },
        }))
    }

    /// Advances the position by `n` units.
    pub fn inc(&self, n: u64) {
        match &self.0.mode {
            Mode::Hidden => {}
            Mode::Bar(b) => b.inc(n),
            Mode::Lines { pos, .. } => {
                let p = pos.fetch_add(n, Ordering::Relaxed).saturating_add(n);
                self.line_at(p);
            }
        }
    }

    /// Sets the position to `p` units.
    pub fn set_position(&self, p: u64) {
        match &self.0.mode {
            Mode::Hidden => {}
            Mode::Bar(b) => b.set_position(p),
            Mode::Lines { pos, .. } => {
                pos.store(p, Ordering::Relaxed);
                self.line_at(p);
            }
        }
    }

    /// Shows `msg` beside the bar, or prints it as a line (the caller paces its messages).
    pub fn message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.0.mode {
            Mode::Hidden => {}
            Mode::Bar(b) => b.set_message(msg),
            Mode::Lines { out, .. } => {
                let mut out = out.lock().expect("progress output lock poisoned");
                let _ = writeln!(out, "{}: {msg}", self.0.label);
            }
        }
    }

    /// Ends the job: the bar stays on screen with `msg`; in line mode a last line with the
    /// elapsed time.
    pub fn finish(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.0.mode {
            Mode::Hidden => {}
            Mode::Bar(b) => b.finish_with_message(msg),
            Mode::Lines { out, .. } => {
                let mut out = out.lock().expect("progress output lock poisoned");
                let _ = writeln!(
                    out,
                    "{}: done in {:.1} s{}{msg}",
                    self.0.label,
                    self.0.started.elapsed().as_secs_f64(),
                    if msg.is_empty() { "" } else { ": " }
                );
            }
        }
    }

    /// Line mode: prints `pos/len (pct%)` once per tenth crossed.
    fn line_at(&self, p: u64) {
        let Mode::Lines {
            len: Some(len),
            step_printed,
            out,
            ..
        } = &self.0.mode
        else {
            return;
        };
        if *len == 0 {
            return;
        }
        let step = (p.min(*len).saturating_mul(LINE_STEPS) / len).min(LINE_STEPS);
        // Only the thread that raises `step_printed` prints, so each tenth prints once.
        let prev = step_printed.fetch_max(step, Ordering::Relaxed);
        if step > prev {
            let mut out = out.lock().expect("progress output lock poisoned");
            let _ = writeln!(
                out,
                "{}: {}/{len} ({}%)",
                self.0.label,
                p.min(*len),
                step * 100 / LINE_STEPS
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared buffer standing in for stderr.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    #[test]
    fn lines_print_once_per_tenth_however_many_increments() {
        let buf = Buf::default();
        let p = Progress::lines("signing", Some(1000), Box::new(buf.clone()));
        for _ in 0..1000 {
            p.inc(1);
        }
        p.finish("1000 transfers");
        let lines = buf.lines();
        // Start, ten tenths, end.
        assert_eq!(lines.len(), 12, "{lines:?}");
        assert_eq!(lines[0], "signing: 0/1000");
        assert_eq!(lines[1], "signing: 100/1000 (10%)");
        assert_eq!(lines[10], "signing: 1000/1000 (100%)");
        assert!(lines[11].starts_with("signing: done in "), "{}", lines[11]);
        assert!(lines[11].ends_with(": 1000 transfers"), "{}", lines[11]);
    }

    #[test]
    fn lines_from_many_threads_print_each_tenth_once() {
        let buf = Buf::default();
        let p = Progress::lines("funding", Some(4000), Box::new(buf.clone()));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let p = p.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        p.inc(1);
                    }
                });
            }
        });
        let lines = buf.lines();
        assert_eq!(lines.len(), 11, "{lines:?}");
        let pcts: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.rsplit('(').next().unwrap())
            .collect();
        let want: Vec<String> = (1..=10).map(|i| format!("{}%)", i * 10)).collect();
        assert_eq!(pcts, want);
    }

    #[test]
    fn jumps_print_the_highest_tenth_only_and_overshoot_is_clamped() {
        let buf = Buf::default();
        let p = Progress::lines("accounts", Some(10), Box::new(buf.clone()));
        p.set_position(7);
        p.set_position(3); // going back prints nothing
        p.set_position(25);
        let lines = buf.lines();
        assert_eq!(
            lines,
            vec![
                "accounts: 0/10",
                "accounts: 7/10 (70%)",
                "accounts: 10/10 (100%)"
            ]
        );
    }

    #[test]
    fn messages_and_unknown_length() {
        let buf = Buf::default();
        let p = Progress::lines("docker build", None, Box::new(buf.clone()));
        p.inc(5); // no length: no tenths
        p.message("step 1/3");
        p.finish("");
        let lines = buf.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "docker build: started");
        assert_eq!(lines[1], "docker build: step 1/3");
        assert!(lines[2].starts_with("docker build: done in ") && lines[2].ends_with(" s"));
    }

    #[test]
    fn hidden_and_zero_length_are_silent() {
        let p = Progress::hidden();
        p.inc(3);
        p.message("x");
        p.finish("y");
        let buf = Buf::default();
        let z = Progress::lines("empty", Some(0), Box::new(buf.clone()));
        z.inc(1);
        assert_eq!(buf.lines(), vec!["empty: 0/0"]);
    }
}

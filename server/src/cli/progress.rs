//! Progress on stderr for the commands that can run for seconds (seed, import,
//! export), only when stderr is a terminal: nothing in pipes, logs or CI output.

use std::{borrow::Cow, io::IsTerminal, time::Duration};

use indicatif::{HumanDuration, ProgressState, ProgressStyle};

/// Below this the rate is noise (a first batch in a few milliseconds would promise
/// a whole import in no time, or one slow first entity an hour): not shown yet.
const SETTLED: Duration = Duration::from_secs(1);

/// A bar counting entities (`seed`, `import`) or bytes (an upload), or a spinner with the time spent
/// when the total is not known (`export`, an upload).
pub struct Progress(pub indicatif::ProgressBar);

impl Progress {
    /// `{verb} [bar, as wide as the terminal allows] 1,234/50,000 entities, 1520/s, about 31 seconds left`.
    pub fn entities(verb: &str, total: u64) -> Option<Progress> {
        let style = ProgressStyle::with_template(
            "{spinner} {prefix} {wide_bar} {human_pos}/{human_len} entities{rate}{left}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", rate)
        .with_key("left", left);
        Self::on_terminal(verb, total, style)
    }

    /// `{verb} [bar] 1.20 MiB/12.31 MiB` (an upload).
    pub fn bytes(verb: &str, total: u64) -> Option<Progress> {
        let style = ProgressStyle::with_template(
            "{spinner} {prefix} {wide_bar} {bytes}/{total_bytes}{left}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("left", left);
        Self::on_terminal(verb, total, style)
    }

    /// `{verb} {message} (3s)`, turning while work of unknown length runs.
    pub fn spinner(verb: &str, message: impl Into<Cow<'static, str>>) -> Option<Progress> {
        let style = ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let progress = Self::on_terminal(verb, 0, style)?;
        progress.0.set_message(message);
        progress.0.enable_steady_tick(Duration::from_millis(120));
        Some(progress)
    }

    fn on_terminal(verb: &str, total: u64, style: ProgressStyle) -> Option<Progress> {
        std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total).with_style(style);
            bar.set_prefix(verb.to_owned());
            Progress(bar)
        })
    }

    /// Gone from the terminal, so that the summary line stands alone.
    pub fn done(self) {}
}

/// Also on an early return: an error message is not printed after a stale frame.
impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Whole entities (or bytes) per second over the run so far, once it has settled.
fn per_second(state: &ProgressState) -> Option<f64> {
    let elapsed = state.elapsed();
    (elapsed >= SETTLED && state.pos() > 0).then(|| state.pos() as f64 / elapsed.as_secs_f64())
}

fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    if let Some(rate) = per_second(state) {
        let _ = write!(w, ", {}/s", rate.round() as u64);
    }
}

/// The rest at the average rate so far: steady, unlike an estimate from the last few steps.
fn left(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let (Some(rate), Some(total)) = (per_second(state), state.len()) else {
        return;
    };
    let rest = total.saturating_sub(state.pos()) as f64 / rate;
    if rest < 1.0 {
        return;
    }
    let _ = write!(
        w,
        ", about {} left",
        HumanDuration(Duration::from_secs_f64(rest))
    );
}

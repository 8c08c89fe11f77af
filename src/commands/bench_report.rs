//! What `earshot bench` reports: per-stage statistics ([`Stat`], [`Stages`]), the
//! [`BenchReport`] printed by `--json`, and its text form ([`format_text`]).

use serde::Serialize;

/// Median / min / max of one stage over the measured windows, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Per-stage statistics (milliseconds per window).
#[derive(Debug, Clone, Serialize)]
pub struct Stages {
    /// Decoding the input file (with `--input`, prorated per window) and resampling to the
    /// model rate.
    pub decode_resample: Stat,
    pub frontend: Stat,
    pub encoder: Stat,
    /// Decoder and search for one caption (all steps).
    pub decoder: Stat,
    /// Sum of the stages above, per window.
    pub total: Stat,
    /// Decoder calls per caption.
    pub decoder_steps: Stat,
}

/// What `earshot bench --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub earshot_version: &'static str,
    pub model: String,
    pub model_name: String,
    pub engine: &'static str,
    pub threads: u32,
    /// Whether this build can run tract on several threads.
    pub multithread_build: bool,
    pub beam: usize,
    pub input: String,
    pub window_seconds: f64,
    pub warmup: u32,
    pub windows: u32,
    /// Wall time of resolving + loading + optimising the model (what start-up costs).
    pub load_ms: f64,
    /// The first (cold) window, all stages.
    pub first_window_ms: f64,
    pub stages_ms: Stages,
    /// Median total / window length.
    pub real_time_factor: f64,
    /// Median decoder time per decoder call.
    pub decoder_ms_per_step: f64,
    /// VmHWM: peak resident memory of the process.
    pub peak_rss_mb: Option<f64>,
    /// VmRSS at the end of the run.
    pub rss_mb: Option<f64>,
    /// Caption of the last window (nonsense for untrained bundles).
    pub last_caption: String,
}

/// The text report.
pub fn format_text(r: &BenchReport) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<18}{v}\n"));
    line("model", format!("{} ({})", r.model, r.model_name));
    line(
        "engine",
        format!(
            "{}, {} thread(s){}, beam {}",
            r.engine,
            r.threads,
            if r.multithread_build {
                ""
            } else {
                " (single-thread build)"
            },
            r.beam
        ),
    );
    line("input", r.input.clone());
    line(
        "windows",
        format!(
            "{} × {} s measured after {} warm-up",
            r.windows, r.window_seconds, r.warmup
        ),
    );
    line("model load", format!("{:.1} ms", r.load_ms));
    line("first window", format!("{:.1} ms", r.first_window_ms));
    s.push_str("stage (ms/window)      median       min       max\n");
    let st = &r.stages_ms;
    for (name, v) in [
        ("decode/resample", st.decode_resample),
        ("log-mel", st.frontend),
        ("encoder", st.encoder),
        ("decoder/caption", st.decoder),
        ("total", st.total),
    ] {
        s.push_str(&format!(
            "  {name:<18}{:>10.2}{:>10.2}{:>10.2}\n",
            v.median, v.min, v.max
        ));
    }
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<18}{v}\n"));
    line(
        "decoder steps",
        format!(
            "{:.0} per caption, {:.2} ms per step",
            st.decoder_steps.median, r.decoder_ms_per_step
        ),
    );
    line(
        "real-time factor",
        format!(
            "{:.4} (median total / {} s window)",
            r.real_time_factor, r.window_seconds
        ),
    );
    let mb = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} MiB"));
    line(
        "memory",
        format!("peak RSS {}, RSS now {}", mb(r.peak_rss_mb), mb(r.rss_mb)),
    );
    line("last caption", format!("{:?}", r.last_caption));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(Stat::of(&[3.0, 1.0, 2.0]).median, 2.0);
        let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Stat::of(&[]).median, 0.0);
    }
}

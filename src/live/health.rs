//! What the periodic health report is made of: the [`Counters`] the live threads share (and
//! their [`Totals`]), and the system facts — resident memory (the one `/proc/self/status`
//! parser, also used by `earshot bench`), CPU temperature (`/sys/class/thermal`) and, on a
//! Raspberry Pi, the throttling flags from `vcgencmd get_throttled`. Every probe returns `None`
//! where the fact is unavailable.

use crate::clips::ClipStats;
use crate::sink::HealthEvent;
use crate::source::ring::RingStats;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Counters shared by the threads (read by health reports and tests).
#[derive(Debug, Default)]
pub struct Counters {
    /// Windows cut from the stream (captioned, gated, suppressed, failed or dropped).
    pub windows: AtomicU64,
    pub captions: AtomicU64,
    pub gated: AtomicU64,
    pub suppressed: AtomicU64,
    /// Captions below `captions.min_confidence`.
    pub uncertain: AtomicU64,
    /// Captions left out by `captions.only` / `captions.ignore`.
    pub filtered: AtomicU64,
    /// Speech windows dropped by `privacy.speech = "drop"`.
    pub privacy_dropped: AtomicU64,
    /// Clips written, pruned and failed (the clip writer's own counters).
    pub clips: Arc<ClipStats>,
    pub dropped_windows: AtomicU64,
    pub errors: AtomicU64,
    /// Messages the outputs dropped on their own (a full MQTT outbox), summed over the sinks.
    pub dropped_messages: AtomicU64,
    /// Source frames read from the ring.
    pub frames_in: AtomicU64,
    /// Largest number of windows waiting at once.
    pub max_queued: AtomicU64,
    /// Window buffers ever allocated (stays at `queue_windows + 2`).
    pub buffers: AtomicU64,
}

/// Totals of a finished run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub windows: u64,
    pub captions: u64,
    pub gated: u64,
    pub suppressed: u64,
    pub uncertain: u64,
    pub filtered: u64,
    pub privacy_dropped: u64,
    pub clips_written: u64,
    pub clips_pruned: u64,
    pub clips_failed: u64,
    pub dropped_windows: u64,
    pub dropped_samples: u64,
    pub errors: u64,
    pub dropped_messages: u64,
    pub frames_in: u64,
    pub max_queued: u64,
    pub buffers: u64,
}

pub(crate) fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

pub(crate) fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn totals(&self, ring: &RingStats) -> Totals {
        Totals {
            windows: get(&self.windows),
            captions: get(&self.captions),
            gated: get(&self.gated),
            suppressed: get(&self.suppressed),
            uncertain: get(&self.uncertain),
            filtered: get(&self.filtered),
            privacy_dropped: get(&self.privacy_dropped),
            clips_written: get(&self.clips.written),
            clips_pruned: get(&self.clips.pruned),
            clips_failed: get(&self.clips.failed),
            dropped_windows: get(&self.dropped_windows),
            dropped_samples: ring.dropped(),
            errors: get(&self.errors),
            dropped_messages: get(&self.dropped_messages),
            frames_in: get(&self.frames_in),
            max_queued: get(&self.max_queued),
            buffers: get(&self.buffers),
        }
    }
}

/// A health report from the counters: `rtf` is the mean real-time factor of the period,
/// `probes` adds the CPU temperature and throttling flags (periodic reports, not the summary).
pub fn report(
    counters: &Counters,
    ring: &RingStats,
    src_rate: u32,
    started: Instant,
    rtf: Option<f64>,
    probes: bool,
) -> HealthEvent {
    let t = counters.totals(ring);
    let rate = f64::from(src_rate.max(1));
    HealthEvent {
        timestamp: Some(SystemTime::now()),
        uptime_s: started.elapsed().as_secs_f64(),
        audio_s: (t.frames_in + t.dropped_samples) as f64 / rate,
        rtf,
        rss_bytes: rss_bytes(),
        dropped_samples: t.dropped_samples,
        dropped_windows: t.dropped_windows,
        windows: t.windows,
        captions: t.captions,
        gated: t.gated,
        suppressed: t.suppressed,
        uncertain: t.uncertain,
        filtered: t.filtered,
        privacy_dropped: t.privacy_dropped,
        clips_written: t.clips_written,
        clips_pruned: t.clips_pruned,
        clips_failed: t.clips_failed,
        errors: t.errors,
        dropped_messages: t.dropped_messages,
        cpu_temp_c: if probes { cpu_temp_c() } else { None },
        throttled: if probes { throttled() } else { None },
    }
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> Option<u64> {
    proc_status_kb("VmRSS").map(|kb| kb * 1024)
}

/// A `/proc/self/status` field (`VmRSS`, `VmHWM`, ...) in kB.
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, field)
}

/// `VmHWM:   12345 kB` → 12345 (the field's value in kB; an `MB` unit is converted).
pub fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let mut parts = line.split(':').nth(1)?.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    Some(match parts.next() {
        Some("mB" | "MB") => value * 1024,
        _ => value,
    })
}

/// `VmRSS:   12345 kB` → bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    parse_status_kb(status, "VmRSS").map(|kb| kb * 1024)
}

/// CPU temperature in °C: the thermal zone whose type names the CPU/SoC, else the first zone.
pub fn cpu_temp_c() -> Option<f64> {
    cpu_temp_in(Path::new("/sys/class/thermal"))
}

pub fn cpu_temp_in(root: &Path) -> Option<f64> {
    let mut zones: Vec<_> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("thermal_zone"))
        })
        .collect();
    zones.sort();
    let read_temp = |zone: &Path| -> Option<f64> {
        let raw = std::fs::read_to_string(zone.join("temp")).ok()?;
        let milli: f64 = raw.trim().parse().ok()?;
        Some(milli / 1000.0)
    };
    let is_cpu = |zone: &Path| {
        std::fs::read_to_string(zone.join("type")).is_ok_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("cpu") || t.contains("soc") || t.contains("x86_pkg")
        })
    };
    zones
        .iter()
        .find(|z| is_cpu(z))
        .and_then(|z| read_temp(z))
        .or_else(|| zones.iter().find_map(|z| read_temp(z)))
}

/// `vcgencmd get_throttled` → e.g. `"0x50005"`; `None` when vcgencmd is absent or fails.
pub fn throttled() -> Option<String> {
    let out = Command::new("vcgencmd")
        .arg("get_throttled")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_throttled(&String::from_utf8_lossy(&out.stdout))
}

/// `throttled=0x50005` → `"0x50005"`.
pub fn parse_throttled(s: &str) -> Option<String> {
    let v = s.trim().strip_prefix("throttled=")?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rss() {
        let s = "Name:\tearshot\nVmPeak:\t  9000 kB\nVmRSS:\t   5120 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(s), Some(5120 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_bytes().unwrap() > 0, "this process has a resident set");
    }

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tearshot\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_status_kb(s, "VmHWM"), Some(51234));
        assert_eq!(parse_status_kb(s, "VmRSS"), Some(40000));
        assert_eq!(parse_status_kb(s, "VmSwap"), None);
        assert!(proc_status_kb("VmHWM").is_some_and(|v| v > 0));
    }

    #[test]
    fn parses_throttled() {
        assert_eq!(
            parse_throttled("throttled=0x50005\n").as_deref(),
            Some("0x50005")
        );
        assert_eq!(parse_throttled("error"), None);
    }

    #[test]
    fn reads_cpu_zone() {
        let dir = tempfile::tempdir().unwrap();
        for (zone, kind, temp) in [
            ("thermal_zone0", "acpitz", "30000"),
            ("thermal_zone1", "cpu-thermal", "51234"),
        ] {
            let z = dir.path().join(zone);
            std::fs::create_dir(&z).unwrap();
            std::fs::write(z.join("type"), kind).unwrap();
            std::fs::write(z.join("temp"), temp).unwrap();
        }
        assert_eq!(cpu_temp_in(dir.path()), Some(51.234));
        assert_eq!(cpu_temp_in(&dir.path().join("missing")), None);
    }
}

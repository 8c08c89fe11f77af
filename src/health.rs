//! System facts for the periodic health report: resident memory (from `/proc/self/status`),
//! CPU temperature (`/sys/class/thermal`) and, on a Raspberry Pi, the throttling flags from
//! `vcgencmd get_throttled`. Every probe returns `None` where the fact is unavailable.

use std::path::Path;
use std::process::Command;

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// `VmRSS:   12345 kB` → bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("kB");
    let mult = match unit {
        "kB" | "KB" | "kb" => 1024,
        "mB" | "MB" => 1024 * 1024,
        _ => 1,
    };
    Some(value * mult)
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

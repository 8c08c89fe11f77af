//! The capture devices of the default cpal host: what `earshot devices` lists ([`list_devices`],
//! with the supported configurations summarised) and how `--device` finds one by a
//! case-insensitive part of its id or name.

use anyhow::{anyhow, bail, Context, Result};
use cpal::traits::{DeviceTrait, HostTrait};
use cpal::Device;

/// One input device as `earshot devices` shows it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Host-specific id (ALSA: the PCM name, e.g. `plughw:CARD=Device,DEV=0`) — unique.
    pub id: String,
    /// Human-readable name (ALSA: the first line of the description).
    pub name: String,
    pub is_default: bool,
    /// The configuration `earshot listen` would open.
    pub native: Option<String>,
    /// Supported ranges: "i16, 44100-48000 Hz, 1-2 ch".
    pub configs: Vec<String>,
}

pub(super) fn device_id(d: &Device) -> String {
    d.description()
        .ok()
        .and_then(|desc| desc.driver().map(str::to_string))
        .or_else(|| d.id().ok().map(|i| i.to_string()))
        .unwrap_or_default()
}

pub(super) fn device_name(d: &Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| "(unnamed)".to_string())
}

/// One line per sample format and rate range, channel counts collapsed into ranges
/// (`i16, 44100-48000 Hz, 1-2 ch`): virtual ALSA devices report every count from 1 to 64.
pub fn summarize_configs(mut ranges: Vec<(String, u32, u32, u16)>) -> Vec<String> {
    ranges.sort_by(|a, b| (&a.0, a.1, a.2, a.3).cmp(&(&b.0, b.1, b.2, b.3)));
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ranges.len() {
        let (fmt, lo, hi, _) = ranges[i].clone();
        let mut chans: Vec<u16> = Vec::new();
        while i < ranges.len() && ranges[i].0 == fmt && ranges[i].1 == lo && ranges[i].2 == hi {
            chans.push(ranges[i].3);
            i += 1;
        }
        chans.dedup();
        let mut parts: Vec<String> = Vec::new();
        let mut j = 0;
        while j < chans.len() {
            let start = chans[j];
            while j + 1 < chans.len() && chans[j + 1] == chans[j] + 1 {
                j += 1;
            }
            parts.push(if chans[j] == start {
                start.to_string()
            } else {
                format!("{start}-{}", chans[j])
            });
            j += 1;
        }
        let rates = if lo == hi {
            format!("{lo} Hz")
        } else {
            format!("{lo}-{hi} Hz")
        };
        out.push(format!("{fmt}, {rates}, {} ch", parts.join(",")));
    }
    out
}

/// Lists the input devices of the default host.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().map(|d| device_id(&d));
    let mut out = Vec::new();
    for d in host
        .input_devices()
        .context("cannot enumerate input devices")?
    {
        let id = device_id(&d);
        let configs = match d.supported_input_configs() {
            Ok(it) => summarize_configs(
                it.map(|c| {
                    (
                        c.sample_format().to_string(),
                        c.min_sample_rate(),
                        c.max_sample_rate(),
                        c.channels(),
                    )
                })
                .collect(),
            ),
            Err(e) => vec![format!("(cannot query: {e})")],
        };
        let native = d.default_input_config().ok().map(|c| {
            format!(
                "{} ch, {} Hz, {}",
                c.channels(),
                c.sample_rate(),
                c.sample_format()
            )
        });
        out.push(DeviceInfo {
            is_default: default_id.as_deref() == Some(id.as_str()),
            name: device_name(&d),
            id,
            native,
            configs,
        });
    }
    Ok(out)
}

/// Devices matching `query` (case-insensitive): exact id/name matches first, then substrings.
/// `None`: the default input device.
pub(super) fn find_devices(query: Option<&str>) -> Result<Vec<Device>> {
    let host = cpal::default_host();
    let Some(q) = query else {
        return host
            .default_input_device()
            .map(|d| vec![d])
            .ok_or_else(|| anyhow!("no default input device (see `earshot devices`)"));
    };
    let q = q.to_lowercase();
    let mut exact = Vec::new();
    let mut partial = Vec::new();
    for d in host
        .input_devices()
        .context("cannot enumerate input devices")?
    {
        let id = device_id(&d).to_lowercase();
        let name = device_name(&d).to_lowercase();
        if id == q || name == q {
            exact.push(d);
        } else if id.contains(&q) || name.contains(&q) {
            partial.push(d);
        }
    }
    exact.extend(partial);
    if exact.is_empty() {
        bail!("no input device matches \"{q}\" (see `earshot devices` for the names)");
    }
    Ok(exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_summarized() {
        let mut v = Vec::new();
        for ch in 1..=64u16 {
            v.push(("i16".to_string(), 1, 192_000, ch));
        }
        v.push(("f32".to_string(), 48_000, 48_000, 2));
        v.push(("f32".to_string(), 48_000, 48_000, 1));
        v.push(("f32".to_string(), 48_000, 48_000, 6));
        assert_eq!(
            summarize_configs(v),
            vec!["f32, 48000 Hz, 1-2,6 ch", "i16, 1-192000 Hz, 1-64 ch"]
        );
    }
}

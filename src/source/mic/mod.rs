//! Capture device source (cpal). The device is chosen by a case-insensitive substring of its name
//! or id (`earshot devices` prints both), or the default input device; it is opened in its own
//! native configuration (rate, channels, sample format) and converted in our code.
//!
//! The data callback only converts samples to f32 in a fixed-capacity stack buffer and pushes them
//! into the ring: no allocation, lock, logging or inference. A stream error, a vanished device or
//! an audio-liveness timeout (no samples for `watchdog` seconds) makes [`Source::poll`] rebuild the
//! stream with exponential backoff while the rest of the pipeline keeps running. Which devices
//! exist and how one is found by name: [`devices`].

pub mod devices;

pub use devices::{list_devices, DeviceInfo};

use super::ring::{Ring, RingWriter};
use super::supervise::{Action, BuildFn, Supervisor};
use super::{Policy, Source, SourceFormat, SourceState};
use anyhow::{anyhow, bail, Result};
use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{Device, FromSample, SampleFormat, SizedSample, Stream, StreamConfig};
use devices::{device_id, device_name, find_devices};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Samples converted per push from the callback (a whole number of frames is taken from it).
const SCRATCH: usize = 2048;

/// Configurations to try, best first: the device default, then each supported range at 48 k,
/// 44.1 k or 16 kHz when inside it (never a range's reported maximum, which can be bogus).
/// When there is none, the returned strings say why (the host's errors).
fn candidate_configs(
    d: &Device,
    want: Option<SourceFormat>,
) -> (Vec<(StreamConfig, SampleFormat)>, Vec<String>) {
    let mut out: Vec<(StreamConfig, SampleFormat)> = Vec::new();
    let mut why = Vec::new();
    let ok = |c: &StreamConfig| {
        want.is_none_or(|w| w.sample_rate == c.sample_rate && w.channels == c.channels)
    };
    match d.default_input_config() {
        Ok(c) => {
            let sc = c.config();
            if ok(&sc) {
                out.push((sc, c.sample_format()));
            }
        }
        Err(e) => why.push(format!("no default configuration: {e}")),
    }
    match d.supported_input_configs() {
        Err(e) => why.push(format!("cannot list configurations: {e}")),
        Ok(ranges) => {
            for r in ranges {
                let mut rates = vec![48_000, 44_100, 32_000, 16_000];
                if let Some(w) = want {
                    rates.insert(0, w.sample_rate);
                }
                rates.push(r.min_sample_rate());
                if let Some(rate) = rates
                    .into_iter()
                    .find(|&x| x >= r.min_sample_rate() && x <= r.max_sample_rate())
                {
                    let sc = StreamConfig {
                        channels: r.channels(),
                        sample_rate: rate,
                        buffer_size: cpal::BufferSize::Default,
                    };
                    if ok(&sc) && !out.iter().any(|(c, f)| *c == sc && *f == r.sample_format()) {
                        out.push((sc, r.sample_format()));
                    }
                }
            }
        }
    }
    if out.is_empty() {
        if let Some(w) = want {
            why.push(format!(
                "{} ch at {} Hz is no longer offered",
                w.channels, w.sample_rate
            ));
        }
    }
    (out, why)
}

fn build_typed<T>(
    device: &Device,
    config: &StreamConfig,
    mut writer: RingWriter,
    failed: Arc<AtomicBool>,
) -> Result<Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels).max(1);
    let per_push = (SCRATCH / channels).max(1) * channels;
    let mut scratch: heapless::Vec<f32, SCRATCH> = heapless::Vec::new();
    device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _info: &cpal::InputCallbackInfo| {
            // Real-time context: convert in a fixed-capacity buffer and push; nothing else.
            for block in data.chunks(per_push) {
                scratch.clear();
                for &s in block {
                    let _ = scratch.push(f32::from_sample_(s));
                }
                writer.push(&scratch);
            }
        },
        move |_err| {
            failed.store(true, Ordering::Relaxed);
        },
        None,
    )
}

fn build_stream(
    device: &Device,
    config: &StreamConfig,
    format: SampleFormat,
    writer: RingWriter,
    failed: Arc<AtomicBool>,
) -> Result<Stream> {
    let stream = match format {
        SampleFormat::I8 => build_typed::<i8>(device, config, writer, failed),
        SampleFormat::I16 => build_typed::<i16>(device, config, writer, failed),
        SampleFormat::I24 => build_typed::<cpal::I24>(device, config, writer, failed),
        SampleFormat::I32 => build_typed::<i32>(device, config, writer, failed),
        SampleFormat::U8 => build_typed::<u8>(device, config, writer, failed),
        SampleFormat::U16 => build_typed::<u16>(device, config, writer, failed),
        SampleFormat::U32 => build_typed::<u32>(device, config, writer, failed),
        SampleFormat::F32 => build_typed::<f32>(device, config, writer, failed),
        SampleFormat::F64 => build_typed::<f64>(device, config, writer, failed),
        other => bail!("unsupported sample format {other}"),
    }
    .map_err(|e| anyhow!("{e}"))?;
    stream
        .play()
        .map_err(|e| anyhow!("cannot start the stream: {e}"))?;
    Ok(stream)
}

struct Opened {
    stream: Stream,
    device: String,
    format: SourceFormat,
    sample_format: SampleFormat,
}

/// Finds the device and opens the first configuration that works.
fn open(
    query: Option<&str>,
    want: Option<SourceFormat>,
    ring: Option<&Ring>,
    failed: &Arc<AtomicBool>,
) -> Result<Opened> {
    let mut errors = Vec::new();
    for d in find_devices(query)? {
        let label = format!("{} ({})", device_name(&d), device_id(&d));
        let (candidates, why) = candidate_configs(&d, want);
        if candidates.is_empty() {
            errors.push(format!("{label}: {}", why.join("; ")));
        }
        for (config, sf) in candidates {
            let format = SourceFormat {
                sample_rate: config.sample_rate,
                channels: config.channels,
            };
            let owned_ring;
            let ring = match ring {
                Some(r) => r,
                None => {
                    // Probe: a throwaway ring; the real one is made for the opened format.
                    owned_ring = Ring::new(1024, usize::from(format.channels))?;
                    &owned_ring
                }
            };
            let writer = ring.writer()?;
            match build_stream(&d, &config, sf, writer, failed.clone()) {
                Ok(stream) => {
                    return Ok(Opened {
                        stream,
                        device: label,
                        format,
                        sample_format: sf,
                    })
                }
                Err(e) => errors.push(format!(
                    "{label} {} ch {} Hz {sf}: {e:#}",
                    config.channels, config.sample_rate
                )),
            }
        }
    }
    if errors.is_empty() {
        bail!("the device offers no usable input configuration");
    }
    bail!(
        "cannot open the capture device: {} (`earshot devices` lists the usable ones)",
        errors.join("; ")
    )
}

pub struct MicSource {
    query: Option<String>,
    format: SourceFormat,
    label: String,
    watchdog: Duration,
    supervisor: Option<Supervisor<Stream>>,
}

impl MicSource {
    /// Probes the device now (so a wrong name fails at start-up) and remembers its native format.
    pub fn open(query: Option<&str>, watchdog: Duration) -> Result<MicSource> {
        let failed = Arc::new(AtomicBool::new(false));
        let probe = open(query, None, None, &failed)?;
        log::info!(
            "capture device {}: {} ch, {} Hz, {}",
            probe.device,
            probe.format.channels,
            probe.format.sample_rate,
            probe.sample_format
        );
        let format = probe.format;
        let label = probe.device.clone();
        drop(probe);
        Ok(MicSource {
            query: query.map(str::to_string),
            format,
            label,
            watchdog,
            supervisor: None,
        })
    }

    /// Streams rebuilt so far.
    pub fn rebuilds(&self) -> u64 {
        self.supervisor.as_ref().map_or(0, |s| s.rebuilds())
    }
}

impl Source for MicSource {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn format(&self) -> SourceFormat {
        self.format
    }

    fn policy(&self) -> Policy {
        Policy {
            shed_oldest: true,
            drop_windows: true,
        }
    }

    fn start(&mut self, ring: &Ring) -> Result<()> {
        let query = self.query.clone();
        let format = self.format;
        let build: BuildFn<Stream> = Box::new(move |ring: &Ring, failed: Arc<AtomicBool>| {
            // Same device (looked up again by name: it may have been renumbered) and format.
            open(query.as_deref(), Some(format), Some(ring), &failed).map(|o| o.stream)
        });
        self.supervisor = Some(Supervisor::start(ring, self.watchdog, build)?);
        Ok(())
    }

    fn poll(&mut self) -> SourceState {
        let Some(s) = self.supervisor.as_mut() else {
            return SourceState::Running;
        };
        let flagged = s.error_flagged();
        match s.poll() {
            Action::Rebuilt => {
                let why = if flagged {
                    "after a stream error"
                } else {
                    "after the audio stopped"
                };
                log::warn!("capture stream on {} rebuilt {why}", self.label);
            }
            Action::Failed(e) => log::warn!(
                "capture device {} unavailable: {e}; retrying in {:.1} s",
                self.label,
                s.backoff().as_secs_f64() / 2.0
            ),
            Action::Nothing | Action::Waiting => {}
        }
        SourceState::Running
    }

    fn stop(&mut self) {
        if let Some(s) = self.supervisor.as_mut() {
            if let Some(stream) = s.handle() {
                let _ = stream.pause();
            }
            s.stop();
        }
        self.supervisor = None;
    }
}

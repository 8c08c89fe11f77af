//! An audio file as a live-like source (decoded with [`crate::audio::decode`], mono): played at
//! `speed` × real time, or as fast as possible without losing anything (`speed` = `None`).

use super::ring::Ring;
use super::{wait_until, Policy, Source, SourceFormat, SourceState, ThreadState};
use crate::audio::decode::AudioDecoder;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct FileSource {
    path: PathBuf,
    speed: Option<f64>,
    format: SourceFormat,
    decoder: Option<AudioDecoder>,
    thread: ThreadState,
}

impl FileSource {
    /// Opens and probes the file (errors surface here, before anything starts).
    pub fn open(path: &Path, speed: Option<f64>) -> Result<FileSource> {
        let decoder = AudioDecoder::open(path).with_context(|| format!("{}", path.display()))?;
        let format = SourceFormat {
            sample_rate: decoder.info().sample_rate,
            channels: 1,
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            speed,
            format,
            decoder: Some(decoder),
            thread: ThreadState::new(),
        })
    }
}

impl Source for FileSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn format(&self) -> SourceFormat {
        self.format
    }

    fn policy(&self) -> Policy {
        Policy {
            shed_oldest: false,
            drop_windows: self.speed.is_some(),
        }
    }

    fn start(&mut self, ring: &Ring) -> Result<()> {
        let mut decoder = self
            .decoder
            .take()
            .context("the file source was already started")?;
        let mut writer = ring.writer()?;
        let rate = f64::from(self.format.sample_rate);
        let speed = self.speed;
        self.thread.spawn("earshot-file", move |stop| {
            let t0 = Instant::now();
            let mut sent: u64 = 0;
            // Errors without the file name: the pipeline names the source.
            while let Some(chunk) = decoder.next_chunk()? {
                let mut rest = chunk;
                while !rest.is_empty() {
                    if let Some(speed) = speed {
                        // Real-time pace: release audio no earlier than it would have been heard.
                        let due = t0 + Duration::from_secs_f64(sent as f64 / rate / speed);
                        if !wait_until(stop, || Instant::now() >= due) {
                            return Ok(());
                        }
                    }
                    // Small blocks, as a capture device would deliver them.
                    let block = rest.len().min(1024);
                    if speed.is_none() && !wait_until(stop, || writer.vacant_frames() >= block) {
                        return Ok(());
                    }
                    writer.push(&rest[..block]);
                    sent += block as u64;
                    rest = &rest[block..];
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Ok(())
        })
    }

    fn poll(&mut self) -> SourceState {
        self.thread.state()
    }

    fn stop(&mut self) {
        self.thread.stop();
    }
}

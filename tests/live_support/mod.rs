//! Helpers for the `earshot listen` tests: a fake model, an in-memory sink, signals.
#![allow(dead_code)]

use anyhow::Result;
use earshot::live::WindowCaptioner;
use earshot::sink::{Event, EventSink};
use earshot::{Caption, Timings};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake model: names the dominant tone of the real part of a window from its zero-crossing
/// rate ("a low tone" below 700 Hz, "a high tone" above), optionally sleeping to be slow.
pub struct FakeModel {
    pub rate: u32,
    pub window: usize,
    pub delay: Duration,
    /// Append the call number, so every caption differs.
    pub numbered: bool,
    pub calls: usize,
}

impl FakeModel {
    pub fn new(rate: u32, window_seconds: f64) -> FakeModel {
        FakeModel {
            rate,
            window: (window_seconds * f64::from(rate)).round() as usize,
            delay: Duration::ZERO,
            numbered: false,
            calls: 0,
        }
    }
}

/// Zero-crossing frequency estimate in Hz.
pub fn zcr_hz(x: &[f32], rate: u32) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let crossings = x
        .windows(2)
        .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
        .count();
    crossings as f64 * f64::from(rate) / (2.0 * x.len() as f64)
}

impl WindowCaptioner for FakeModel {
    fn window_samples(&self) -> usize {
        self.window
    }

    fn caption(&mut self, window: &[f32], valid: usize) -> Result<Caption> {
        anyhow::ensure!(
            window.len() == self.window,
            "wrong window length {}",
            window.len()
        );
        self.calls += 1;
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        // Only the loud part counts (a window may be half silence).
        let loud: Vec<f32> = window[..valid]
            .iter()
            .copied()
            .filter(|s| s.abs() > 1e-3)
            .collect();
        let f = zcr_hz(&loud, self.rate);
        let mut text = if f < 700.0 {
            "a low tone"
        } else {
            "a high tone"
        }
        .to_string();
        if self.numbered {
            text.push_str(&format!(" number {}", self.calls));
        }
        Ok(Caption {
            text,
            token_ids: vec![],
            timings: Timings::default(),
        })
    }
}

/// Collects events in memory.
#[derive(Clone, Default)]
pub struct MemorySink {
    pub events: Arc<Mutex<Vec<Event>>>,
    pub flushed: Arc<Mutex<bool>>,
}

impl EventSink for MemorySink {
    fn name(&self) -> String {
        "memory".into()
    }
    fn emit(&mut self, event: &Event) -> Result<()> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        *self.flushed.lock().unwrap() = true;
        Ok(())
    }
}

impl MemorySink {
    pub fn captions(&self) -> Vec<earshot::sink::LiveCaption> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Caption(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn summary(&self) -> Option<earshot::sink::HealthEvent> {
        self.events.lock().unwrap().iter().find_map(|e| match e {
            Event::Summary(h) => Some(h.clone()),
            _ => None,
        })
    }
}

/// `seconds` of a sine at `freq` and amplitude `amp` (0 amplitude = digital silence).
pub fn tone(rate: u32, seconds: f64, freq: f64, amp: f32) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| {
            amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32
        })
        .collect()
}

/// 0–4 s low tone (440 Hz), 4–8 s silence, 8–12 s high tone (1500 Hz).
pub fn three_segments(rate: u32) -> Vec<f32> {
    let mut x = tone(rate, 4.0, 440.0, 0.5);
    x.extend(tone(rate, 4.0, 0.0, 0.0));
    x.extend(tone(rate, 4.0, 1500.0, 0.5));
    x
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

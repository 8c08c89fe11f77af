//! A fake model (names the dominant tone of a window), an in-memory sink, and the live-run
//! parameters the `listen` tests start from.

use anyhow::Result;
use earshot::live::LiveParams;
use earshot::model::{Caption, Timings, WindowCaptioner};
use earshot::sink::{Event, EventSink, HealthEvent, LiveCaption};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The model rate of the fake model runs.
pub const RATE: u32 = 16_000;

/// Live parameters at [`RATE`]: `window` and `hop` in seconds, gate at -50 dBFS, 30 s
/// hold-off, a queue of 2 windows, a 1 s ring, no health reports.
pub fn live_params(window: f64, hop: f64) -> LiveParams {
    LiveParams {
        model_rate: RATE,
        window_samples: (window * f64::from(RATE)) as usize,
        hop_samples: (hop * f64::from(RATE)) as usize,
        gate_dbfs: Some(-50.0),
        holdoff_seconds: 30.0,
        similarity: 0.8,
        queue_windows: 2,
        ring_seconds: 1.0,
        health_every: None,
        rules: earshot::live::filter::CaptionRules::none(),
        clips: None,
    }
}

/// The sinks of a run: just `m` (a clone shares its events).
pub fn sinks(m: &MemorySink) -> Vec<Box<dyn EventSink>> {
    vec![Box::new(m.clone())]
}

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
            ..Default::default()
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
    pub fn captions(&self) -> Vec<LiveCaption> {
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
    pub fn summary(&self) -> Option<HealthEvent> {
        self.events.lock().unwrap().iter().find_map(|e| match e {
            Event::Summary(h) => Some(h.clone()),
            _ => None,
        })
    }
}

/// A fake model whose captions and confidences follow a script, one entry per window (the last
/// entry repeats): `(text, confidence)`; `None` = a bundle without a confidence section.
/// Caption texts get the call number appended when `numbered`, so hold-off never hides one.
pub struct ScriptedModel {
    pub window: usize,
    pub script: Vec<(String, Option<f64>)>,
    pub numbered: bool,
    pub calls: usize,
}

impl ScriptedModel {
    pub fn new(window_seconds: f64, script: &[(&str, Option<f64>)]) -> ScriptedModel {
        ScriptedModel {
            window: (window_seconds * f64::from(RATE)).round() as usize,
            script: script.iter().map(|(t, c)| (t.to_string(), *c)).collect(),
            numbered: false,
            calls: 0,
        }
    }
}

impl WindowCaptioner for ScriptedModel {
    fn window_samples(&self) -> usize {
        self.window
    }

    fn caption(&mut self, window: &[f32], _valid: usize) -> Result<Caption> {
        anyhow::ensure!(window.len() == self.window, "wrong window length");
        let i = self.calls.min(self.script.len().saturating_sub(1));
        self.calls += 1;
        let (text, confidence) = self.script.get(i).cloned().unwrap_or_default();
        let text = match self.numbered {
            true => format!("{text} take {}", self.calls),
            false => text,
        };
        Ok(Caption {
            text,
            token_ids: vec![4, 5, 2],
            confidence,
            ..Default::default()
        })
    }
}

/// A caption event for the sink tests: `text` over the window `[start, start + 10)`, window
/// number `index`, source "test", no confidence, tags or clip (set them on the result).
pub fn live_caption(text: &str, start: f64, index: u64) -> LiveCaption {
    LiveCaption {
        event: earshot::CaptionEvent {
            source: "test".into(),
            start,
            end: start + 10.0,
            caption: Caption {
                text: text.into(),
                token_ids: vec![],
                timings: Timings::default(),
                ..Default::default()
            },
        },
        timestamp: SystemTime::now(),
        window_index: index,
        latency_ms: 3.0,
        inference_ms: 2.0,
        rtf: 0.4,
        dropped_samples: 0,
        dropped_windows: 0,
        level_dbfs: -20.0,
        clip: None,
    }
}

//! Regression tests for issue 13 (live pipeline and sinks, in process): each failed on the main
//! branch before its fix.

mod support;

use earshot::audio::pcm::PcmFormat;
use earshot::live::{self, LiveParams};
use earshot::sink::mqtt::{MqttSettings, MqttSink};
use earshot::sink::{Event, EventSink, HealthEvent};
use earshot::source::stdin::StdinSource;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use support::broker::{free_port, mqtt_settings, start_broker, subscribe};
use support::fake::{live_caption, live_params, FakeModel, MemorySink, RATE};

// ---- item 3: stdin faster than real time loses nothing ----

#[test]
fn stdin_faster_than_real_time_drops_no_window() {
    // 30 s of raw PCM, all there at once (a file piped in); 2 s windows every 0.5 s and a model
    // that needs 20 ms a window: the DSP thread cuts windows far faster than they are captioned.
    let audio = support::signal(RATE, 30.0);
    let bytes: Vec<u8> = audio
        .iter()
        .flat_map(|&s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut source = StdinSource::from_reader(
        Box::new(std::io::Cursor::new(bytes)),
        PcmFormat::S16Le,
        Some(RATE),
        1,
    )
    .unwrap();
    let mut model = FakeModel::new(RATE, 2.0);
    model.delay = Duration::from_millis(20);
    model.numbered = true;
    let params = LiveParams {
        gate_dbfs: None,
        holdoff_seconds: 0.0, // every window's caption is printed, none de-duplicated
        ..live_params(2.0, 0.5)
    };
    let mem = MemorySink::default();
    let stop = AtomicBool::new(false);
    let t = live::run(
        &mut source,
        params,
        Box::new(model),
        support::fake::sinks(&mem),
        &stop,
    )
    .unwrap();
    assert_eq!(t.dropped_windows, 0, "{t:?}");
    assert_eq!(t.dropped_samples, 0, "{t:?}");
    assert!(t.windows >= 57, "{t:?}");
    assert_eq!(t.captions, t.windows, "{t:?}");
    assert_eq!(mem.captions().len() as u64, t.windows);
}

// ---- item 14: a full MQTT queue drops the oldest, captions before health ----

fn caption(n: usize) -> Event {
    Event::Caption(live_caption(&format!("caption {n}"), n as f64, n as u64))
}

#[test]
fn full_mqtt_queue_drops_the_oldest_and_keeps_captions() {
    let port = free_port();
    let settings = MqttSettings {
        reconnect_seconds: 2.0,
        ..mqtt_settings(port, "earshot/rel/captions", "es-rel-overflow")
    };
    // The broker is down: everything waits in the queue, which overflows.
    let mut sink = MqttSink::start(&settings).unwrap();
    sink.emit(&Event::Health(HealthEvent::default())).unwrap();
    for n in 0..100 {
        let _ = sink.emit(&caption(n));
    }
    assert!(sink.dropped() > 0);
    let Some(broker) = start_broker(port) else {
        return;
    };
    let rx = subscribe(broker.port, "earshot/rel/#");
    let mut got = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        let Ok((topic, payload, _)) = rx.recv_timeout(Duration::from_millis(500)) else {
            continue;
        };
        if topic.ends_with("/status") {
            continue; // `online` (not JSON): the availability topic
        }
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let last = v["caption"] == "caption 99";
        got.push((topic, v));
        if last {
            break;
        }
    }
    sink.flush().unwrap();
    let texts: Vec<String> = got
        .iter()
        .filter_map(|(_, v)| v["caption"].as_str().map(str::to_string))
        .collect();
    assert!(
        texts.contains(&"caption 99".to_string()),
        "the newest caption is kept: {texts:?}"
    );
    assert!(
        !texts.contains(&"caption 0".to_string()),
        "the oldest is dropped: {texts:?}"
    );
    assert!(
        got.iter().all(|(topic, _)| topic == "earshot/rel/captions"),
        "health is dropped before captions"
    );
    assert_eq!(sink.dropped(), 101 - 64);
}

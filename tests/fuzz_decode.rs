//! A stable-Rust mutation fuzzer for the two loaders that read untrusted bytes: the audio
//! decode path (`AudioDecoder` → `WindowStream` at 16 kHz, as `earshot caption` runs it) and
//! the bundle manifest (`Manifest::from_json`, and a full `Model::load` for the mutants that
//! pass it). Seeded mutations — bit flips, byte overwrites, header fields overwritten with
//! boundary values, truncations, deleted / duplicated / inserted ranges — of valid WAV, RF64,
//! FLAC, OGG/Vorbis and MP3 inputs and of the tiny bundle's manifest.json.
//!
//! Each input must: not panic out of the library (panics symphonia raises and the decoder
//! catches are counted and printed as findings), allocate at most [`MAX_PEAK_BYTES`] more than
//! before it (a counting global allocator, per thread), and finish within [`MAX_SECONDS`].
//!
//! By default the run is a fixed number of inputs ([`DEFAULT_AUDIO_INPUTS`],
//! [`DEFAULT_MANIFEST_INPUTS`]: the same inputs on every machine, about two minutes here);
//! `EARSHOT_FUZZ_SECONDS=N` runs for N seconds instead (split 3:1 between audio and manifest)
//! and `EARSHOT_FUZZ_SEED` (default 1) picks the sequence. A failing input is written to
//! `$TMPDIR/earshot-fuzz-*` with its seed and index. See docs/fuzz.md.

mod support;

use earshot::audio::decode::AudioDecoder;
use earshot::audio::stream::WindowStream;
use earshot::model::{LoadOptions, Manifest, Model};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::wav::WavSpec;

/// Allocation allowed per input above what the thread held before it.
const MAX_PEAK_BYTES: isize = 64 << 20;
/// Time allowed per input.
const MAX_SECONDS: f64 = 10.0;
/// Audio inputs of the default run.
const DEFAULT_AUDIO_INPUTS: u64 = 36_000;
/// Manifest inputs of the default run.
const DEFAULT_MANIFEST_INPUTS: u64 = 6_000;

// ---- a per-thread counting allocator ----

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator; the thread-local cells are const-initialised and
// have no destructor, so touching them never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as isize));
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new as isize - l.size() as isize);
        unsafe { System.realloc(p, l, new) }
    }
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let v = live.get() + delta;
        live.set(v);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(v)));
    });
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its result and the peak bytes it allocated above the starting level.
fn measured<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(|p| p.get()) - base)
}

// ---- deterministic mutations ----

/// xorshift64*: the whole run follows from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break size and rate fields.
fn interesting(rng: &mut Rng) -> u32 {
    const V: [u32; 14] = [
        0,
        1,
        2,
        0x7F,
        0x80,
        0xFF,
        0x7FFF,
        0x8000,
        0xFFFF,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFB,
        0xFFFF_FFFF,
        65,
    ];
    match rng.below(4) {
        0 => rng.next() as u32,
        // A plausible but odd sample rate (passes the rate rule, worst case for resampling).
        1 => 1000 + rng.below(767_001) as u32,
        _ => V[rng.below(V.len())],
    }
}

/// Applies 1–4 mutations; returns their names.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>) -> String {
    let mut names = Vec::new();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next() as u8);
        }
        let len = b.len();
        let name = match rng.below(7) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(len);
                    b[i] ^= 1 << rng.below(8);
                }
                "bitflip"
            }
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(len);
                    b[i] = rng.next() as u8;
                }
                "byte"
            }
            2 => {
                // A 16- or 32-bit header field (most headers sit in the first 128 bytes).
                let width = if rng.below(2) == 0 { 2 } else { 4 };
                let at = rng.below(len.min(128).saturating_sub(width) + 1) & !1;
                let v = interesting(rng).to_le_bytes();
                let end = (at + width).min(len);
                b[at..end].copy_from_slice(&v[..end - at]);
                "field"
            }
            3 => {
                b.truncate(rng.below(len + 1));
                "truncate"
            }
            4 => {
                let at = rng.below(len);
                let n = rng.below((len - at).min(4096)) + 1;
                b.drain(at..at + n);
                "delete"
            }
            5 => {
                let at = rng.below(len);
                let n = rng.below((len - at).min(4096)) + 1;
                let copy = b[at..at + n].to_vec();
                let to = rng.below(len + 1);
                b.splice(to..to, copy);
                "duplicate"
            }
            _ => {
                let to = rng.below(len + 1);
                let n = 1 + rng.below(64);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(to..to, junk);
                "insert"
            }
        };
        names.push(name);
    }
    names.join("+")
}

// ---- the run ----

/// How long a target runs: `share` of `EARSHOT_FUZZ_SECONDS`, or `inputs` inputs.
struct Budget {
    until: Option<Instant>,
    inputs: u64,
}

impl Budget {
    fn new(share: f64, inputs: u64) -> Budget {
        let secs = std::env::var("EARSHOT_FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok());
        Budget {
            until: secs.map(|s| Instant::now() + Duration::from_secs_f64(s.max(1.0) * share)),
            inputs,
        }
    }

    fn more(&self, done: u64) -> bool {
        match self.until {
            Some(t) => Instant::now() < t,
            None => done < self.inputs,
        }
    }
}

fn seed() -> u64 {
    std::env::var("EARSHOT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Panics raised anywhere (also the ones the decoder catches and turns into errors).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            default(info);
        }));
    });
}

/// What happened to the inputs of one target.
#[derive(Default)]
struct Tally {
    runs: u64,
    ok: u64,
    /// Error messages, shortened to their first words, with counts.
    errors: BTreeMap<String, u64>,
    caught_panics: Vec<String>,
    max_ms: f64,
    max_peak: isize,
}

impl Tally {
    fn record(&mut self, outcome: Result<(), String>, ms: f64, peak: isize) {
        self.runs += 1;
        self.max_ms = self.max_ms.max(ms);
        self.max_peak = self.max_peak.max(peak);
        match outcome {
            Ok(()) => self.ok += 1,
            Err(e) => {
                if e.contains("failed (") && self.caught_panics.len() < 10 {
                    self.caught_panics.push(e.clone());
                }
                let key: String = e
                    .split_whitespace()
                    .take(6)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .collect();
                *self.errors.entry(key).or_default() += 1;
            }
        }
    }

    fn report(&self, what: &str) {
        eprintln!(
            "fuzz {what}: {} inputs, {} decoded/loaded, max {:.1} ms and {:.1} MB per input, \
             {} caught decoder panics",
            self.runs,
            self.ok,
            self.max_ms,
            self.max_peak as f64 / 1048576.0,
            self.caught_panics.len()
        );
        for p in &self.caught_panics {
            eprintln!("  caught: {p}");
        }
        let mut top: Vec<_> = self.errors.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        for (e, n) in top.iter().take(12) {
            eprintln!("  {n:>6} × {e}");
        }
    }
}

/// Keeps a failing input for reproduction and fails the test.
fn fail(kind: &str, seed: u64, index: u64, how: &str, bytes: &[u8], why: &str) -> ! {
    let p = std::env::temp_dir().join(format!("earshot-fuzz-{kind}-seed{seed}-{index}"));
    let _ = std::fs::write(&p, bytes);
    panic!(
        "fuzz {kind}: input {index} of seed {seed} ({how}) {why}; kept as {}",
        p.display()
    );
}

/// Decodes `bytes` to the end and cuts 16 kHz windows, as `earshot caption` does.
fn decode(bytes: Vec<u8>) -> Result<(), String> {
    let mut d = AudioDecoder::from_source(Box::new(std::io::Cursor::new(bytes)), None)
        .map_err(|e| format!("{e:#}"))?;
    let rate = d.info().sample_rate;
    let mut ws = WindowStream::new(rate, 16_000, 16_000, 8_000).map_err(|e| format!("{e:#}"))?;
    let mut windows = 0usize;
    while let Some(chunk) = d.next_chunk().map_err(|e| format!("{e:#}"))? {
        assert!(chunk.iter().all(|v| v.is_finite()), "non-finite sample out");
        ws.push(chunk, |_| {
            windows += 1;
            Ok(())
        })
        .map_err(|e| format!("{e:#}"))?;
    }
    ws.finish(|_| Ok(())).map_err(|e| format!("{e:#}"))
}

fn rf64(wav: &[u8]) -> Vec<u8> {
    let data_len = (wav.len() - 44) as u64;
    let mut rf = b"RF64".to_vec();
    rf.extend_from_slice(&u32::MAX.to_le_bytes());
    rf.extend_from_slice(b"WAVEds64");
    rf.extend_from_slice(&28u32.to_le_bytes());
    rf.extend_from_slice(&(wav.len() as u64 + 28).to_le_bytes());
    rf.extend_from_slice(&data_len.to_le_bytes());
    rf.extend_from_slice(&(data_len / 2).to_le_bytes());
    rf.extend_from_slice(&0u32.to_le_bytes());
    rf.extend_from_slice(&wav[12..40]);
    rf.extend_from_slice(&u32::MAX.to_le_bytes());
    rf.extend_from_slice(&wav[44..]);
    rf
}

fn audio_seeds() -> Vec<(String, Vec<u8>)> {
    let data = support::repo().join("tests/data");
    let mut seeds = vec![
        (
            "pcm16-mono.wav".into(),
            WavSpec::pcm16(16_000, 1, 0.5).bytes(),
        ),
        (
            "f32-stereo.wav".into(),
            WavSpec::float32(44_100, 2, 0.3).bytes(),
        ),
        ("s24-6ch-ext.wav".into(), {
            let mut w = WavSpec::pcm16(48_000, 6, 0.1);
            (w.bits, w.extensible) = (24, true);
            w.bytes()
        }),
        ("alaw.wav".into(), {
            let mut w = WavSpec::pcm16(8_000, 1, 0.5);
            (w.tag, w.bits) = (6, 8);
            w.bytes()
        }),
        (
            "rf64.wav".into(),
            rf64(&WavSpec::pcm16(22_050, 1, 0.3).bytes()),
        ),
    ];
    for name in [
        "tone-22k-stereo.flac",
        "tone-44k1-stereo.ogg",
        "noise-16k-mono-12s.ogg",
        "tone-48k-mono.mp3",
    ] {
        seeds.push((name.into(), std::fs::read(data.join(name)).unwrap()));
    }
    seeds
}

#[test]
fn fuzz_audio_decoding() {
    count_panics();
    let seeds = audio_seeds();
    // Every seed decodes as it is.
    for (name, b) in &seeds {
        decode(b.clone()).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
    let seed = seed();
    let mut rng = Rng::new(seed);
    let budget = Budget::new(0.75, DEFAULT_AUDIO_INPUTS);
    let started = Instant::now();
    let mut tally = Tally::default();
    let panics_before = PANICS.load(Ordering::Relaxed);
    let mut index = 0u64;
    while budget.more(index) {
        let (name, base) = &seeds[rng.below(seeds.len())];
        let mut bytes = base.clone();
        let how = format!("{name}: {}", mutate(&mut rng, &mut bytes));
        let t = Instant::now();
        let input = bytes.clone();
        let (outcome, peak) =
            measured(|| std::panic::catch_unwind(move || decode(input)).map_err(|_| ()));
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let Ok(outcome) = outcome else {
            fail("audio", seed, index, &how, &bytes, "panicked");
        };
        if peak > MAX_PEAK_BYTES {
            let why = format!("allocated {} MB", peak >> 20);
            fail("audio", seed, index, &how, &bytes, &why);
        }
        if ms > MAX_SECONDS * 1e3 {
            fail(
                "audio",
                seed,
                index,
                &how,
                &bytes,
                &format!("took {ms:.0} ms"),
            );
        }
        tally.record(outcome, ms, peak);
        index += 1;
    }
    tally.report(&format!(
        "audio (seed {seed}, {:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    eprintln!(
        "  panics raised inside the decoder (caught, reported as errors): {}",
        PANICS.load(Ordering::Relaxed) - panics_before
    );
    assert!(tally.runs > 0);
}

/// A JSON-aware mutation of the manifest: a value somewhere replaced by a boundary value, or
/// a key removed.
fn mutate_json(rng: &mut Rng, v: &mut serde_json::Value) -> &'static str {
    use serde_json::{json, Value};
    match v {
        Value::Object(m) if !m.is_empty() && rng.below(3) != 0 => {
            let k = m.keys().nth(rng.below(m.len())).unwrap().clone();
            if rng.below(6) == 0 {
                m.remove(&k);
                return "remove-key";
            }
            return mutate_json(rng, m.get_mut(&k).unwrap());
        }
        Value::Array(a) if !a.is_empty() && rng.below(3) != 0 => {
            let i = rng.below(a.len());
            return mutate_json(rng, &mut a[i]);
        }
        _ => {}
    }
    let choices = [
        json!(0),
        json!(-1),
        json!(1),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(0.5),
        json!(4_294_967_291u64),
        json!("1"),
        json!(""),
        json!("/etc/passwd"),
        json!("../manifest.json"),
        json!(null),
        json!([]),
        json!({}),
        json!(true),
    ];
    *v = choices[rng.below(choices.len())].clone();
    "value"
}

#[test]
fn fuzz_bundle_manifest() {
    count_panics();
    let Some(bundle) = support::tiny_bundle() else {
        return;
    };
    let text = std::fs::read_to_string(bundle.join("manifest.json")).unwrap();
    Manifest::from_json(&text).expect("the seed manifest is valid");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for f in std::fs::read_dir(&bundle).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap();
        if name != "manifest.json" {
            std::os::unix::fs::symlink(&f, dir.join(name)).unwrap();
        }
    }
    let seed = seed();
    let mut rng = Rng::new(seed ^ 0xB0B);
    let budget = Budget::new(0.25, DEFAULT_MANIFEST_INPUTS);
    let started = Instant::now();
    let mut parsed = Tally::default();
    let mut loaded = Tally::default();
    let mut index = 0u64;
    let opts = LoadOptions::default();
    while budget.more(index) {
        let (bytes, how) = if rng.below(2) == 0 {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut how = Vec::new();
            for _ in 0..1 + rng.below(3) {
                how.push(mutate_json(&mut rng, &mut v));
            }
            (serde_json::to_vec_pretty(&v).unwrap(), how.join("+"))
        } else {
            let mut b = text.clone().into_bytes();
            let how = mutate(&mut rng, &mut b);
            (b, how)
        };
        let t = Instant::now();
        let (outcome, peak) = measured(|| {
            std::panic::catch_unwind(|| {
                let text = String::from_utf8_lossy(&bytes);
                Manifest::from_json(&text)
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}"))
            })
        });
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let Ok(outcome) = outcome else {
            fail("manifest", seed, index, &how, &bytes, "panicked");
        };
        if peak > MAX_PEAK_BYTES || ms > MAX_SECONDS * 1e3 {
            let why = format!("took {ms:.0} ms, {} MB", peak >> 20);
            fail("manifest", seed, index, &how, &bytes, &why);
        }
        let valid = outcome.is_ok();
        parsed.record(outcome, ms, peak);
        // The mutants the manifest accepts go through a full load (graphs, vocabulary).
        if valid {
            std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
            let t = Instant::now();
            let (outcome, peak) = measured(|| {
                std::panic::catch_unwind(|| {
                    Model::load(dir, &opts)
                        .map(|_| ())
                        .map_err(|e| format!("{e:#}"))
                })
            });
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let Ok(outcome) = outcome else {
                fail("bundle", seed, index, &how, &bytes, "panicked");
            };
            if peak > MAX_PEAK_BYTES || ms > MAX_SECONDS * 1e3 {
                let why = format!("took {ms:.0} ms, {} MB", peak >> 20);
                fail("bundle", seed, index, &how, &bytes, &why);
            }
            loaded.record(outcome, ms, peak);
        }
        index += 1;
    }
    parsed.report(&format!(
        "manifest parse (seed {seed}, {:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    loaded.report(&format!("bundle load of accepted manifests (seed {seed})"));
    assert!(parsed.runs > 0);
}

/// The fuzzer's own parts: a mutation keeps within bounds and a seed repeats its sequence.
#[test]
fn mutations_are_deterministic() {
    let base = WavSpec::pcm16(16_000, 1, 0.01).bytes();
    let run = |seed| {
        let mut rng = Rng::new(seed);
        (0..200)
            .map(|_| {
                let mut b = base.clone();
                let how = mutate(&mut rng, &mut b);
                (how, b)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

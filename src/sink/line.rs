//! Line sinks: text or JSON lines to any writer — stdout, an appended file, and (through
//! [`super::serial`]) a serial port. Every line is written whole and flushed at once, so a
//! caption appears when it is made, also through a pipe.

use anyhow::{Context, Result};
use std::io::Write;

use super::event::{Event, EventSink};
use super::format::{event_line, FormatOptions, LineFormat};

/// Text or JSON lines to any writer.
pub struct LineSink<W: Write + Send> {
    name: String,
    out: W,
    format: LineFormat,
    opts: FormatOptions,
}

impl<W: Write + Send> LineSink<W> {
    /// A sink writing captions with the default options (no ids, no source prefix).
    pub fn new(name: impl Into<String>, out: W, format: LineFormat) -> LineSink<W> {
        LineSink {
            name: name.into(),
            out,
            format,
            opts: FormatOptions::default(),
        }
    }

    /// The same with caption options (`earshot caption --print-ids`, several files).
    pub fn with_options(mut self, opts: FormatOptions) -> LineSink<W> {
        self.opts = opts;
        self
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> EventSink for LineSink<W> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn emit(&mut self, event: &Event) -> Result<()> {
        if let Some(line) = event_line(event, self.format, &self.opts) {
            writeln!(self.out, "{line}")
                .and_then(|_| self.out.flush())
                .with_context(|| format!("writing to {}", self.name))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("flushing {}", self.name))
    }
}

/// True when `e` says the reader of our output went away (`earshot caption … | head -1`: a
/// broken pipe). Like a Unix tool, earshot then stops writing and exits quietly.
pub fn output_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// False when standard output was closed when earshot started (`earshot caption >&-`). The
/// Rust runtime puts `/dev/null`, opened read-write, on a closed descriptor 0–2 before `main`;
/// a shell's `>/dev/null` (and systemd's `StandardOutput=null`) open it write-only, so
/// read-write `/dev/null` on descriptor 1 means "closed".
pub fn stdout_open() -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: F_GETFL and fstat only query descriptor 1; `st` is plain data.
    let (flags, st) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (
            libc::fcntl(1, libc::F_GETFL),
            (libc::fstat(1, &mut st) == 0).then_some(st),
        )
    };
    if flags == -1 {
        return false;
    }
    let read_write = flags & libc::O_ACCMODE == libc::O_RDWR;
    let is_null = match (st, std::fs::metadata("/dev/null")) {
        (Some(st), Ok(null)) => {
            st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == null.rdev()
        }
        _ => false,
    };
    !(read_write && is_null)
}

/// Opens a file for appending lines.
pub fn file_sink(path: &std::path::Path, format: LineFormat) -> Result<Box<dyn EventSink>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open output file {}", path.display()))?;
    Ok(Box::new(LineSink::new(
        path.display().to_string(),
        std::io::LineWriter::new(f),
        format,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::event::{CaptionEvent, HealthEvent, LiveCaption};
    use serde_json::Value;
    use std::time::UNIX_EPOCH;

    #[test]
    fn file_caption_lines() {
        let e = crate::sink::format::tests::event();
        let mut sink = LineSink::new("mem", Vec::new(), LineFormat::Text);
        sink.emit(&Event::FileCaption(e)).unwrap();
        assert_eq!(
            String::from_utf8(sink.into_inner()).unwrap(),
            "[00:05.0–00:12.3] a dog barks\n"
        );
    }

    #[test]
    fn line_sink_formats() {
        let ev = Event::Caption(LiveCaption {
            event: CaptionEvent {
                source: "mic".into(),
                start: 5.0,
                end: 15.0,
                caption: crate::model::Caption {
                    text: "a dog barks".into(),
                    token_ids: vec![4, 2],
                    timings: Default::default(),
                    ..Default::default()
                },
            },
            timestamp: UNIX_EPOCH,
            window_index: 3,
            latency_ms: 12.5,
            inference_ms: 10.0,
            rtf: 0.002,
            dropped_samples: 7,
            dropped_windows: 1,
            level_dbfs: -20.04,
            clip: None,
        });
        let mut s = LineSink::new("mem", Vec::new(), LineFormat::Jsonl);
        s.emit(&ev).unwrap();
        s.emit(&Event::Health(HealthEvent::default())).unwrap();
        let text = String::from_utf8(s.into_inner()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["caption"], "a dog barks");
        assert_eq!(lines[0]["end"], 15.0);
        assert_eq!(lines[0]["start"], 5.0);
        assert_eq!(lines[0]["file"], "mic");
        assert_eq!(lines[0]["rtf"], 0.002);
        assert_eq!(lines[0]["dropped_samples"], 7);
        assert_eq!(lines[0]["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(lines[1]["event"], "health");
        let mut t = LineSink::new("mem", Vec::new(), LineFormat::Text);
        t.emit(&ev).unwrap();
        t.emit(&Event::Health(HealthEvent::default())).unwrap();
        let text = String::from_utf8(t.into_inner()).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(text, "[00:05.0–00:15.0] a dog barks\n");
    }
}

//! Human-readable lines: `[00:00.0–00:10.0] a woman speaks`.
//!
//! With several sources the line starts with `SOURCE: `; with `print_ids` the generated token
//! ids follow in brackets: `[00:00.0–00:10.0] a woman speaks  [ids 4 17 9 2]`.

use super::{FormatOptions, Sink};
use crate::pipeline::{format_time, CaptionEvent};
use anyhow::Result;
use std::io::Write;

pub struct TextSink<W: Write> {
    out: W,
    opts: FormatOptions,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W, opts: FormatOptions) -> Self {
        TextSink { out, opts }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Formats one caption line (no newline).
pub fn format_line(event: &CaptionEvent, opts: &FormatOptions) -> String {
    let mut line = String::new();
    if opts.show_source {
        line.push_str(&event.source);
        line.push_str(": ");
    }
    line.push_str(&format!(
        "[{}–{}] ",
        format_time(event.start),
        format_time(event.end)
    ));
    if event.caption.text.is_empty() {
        line.push_str("(empty caption)");
    } else {
        line.push_str(&event.caption.text);
    }
    if opts.print_ids {
        let ids: Vec<String> = event
            .caption
            .token_ids
            .iter()
            .map(|i| i.to_string())
            .collect();
        line.push_str(&format!("  [ids {}]", ids.join(" ")));
    }
    line
}

impl<W: Write> Sink for TextSink<W> {
    fn caption(&mut self, event: &CaptionEvent) -> Result<()> {
        writeln!(self.out, "{}", format_line(event, &self.opts))?;
        // Line-buffered behaviour for pipes: a caption should appear when it is made.
        self.out.flush()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::captioner::{Caption, Timings};

    pub(crate) fn event() -> CaptionEvent {
        CaptionEvent {
            source: "a.wav".into(),
            start: 5.0,
            end: 12.34,
            caption: Caption {
                text: "a dog barks".into(),
                token_ids: vec![7, 8, 9, 2],
                timings: Timings::default(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn plain_and_with_ids() {
        let e = event();
        assert_eq!(
            format_line(&e, &FormatOptions::default()),
            "[00:05.0–00:12.3] a dog barks"
        );
        let o = FormatOptions {
            print_ids: true,
            show_source: true,
        };
        assert_eq!(
            format_line(&e, &o),
            "a.wav: [00:05.0–00:12.3] a dog barks  [ids 7 8 9 2]"
        );
        let mut sink = TextSink::new(Vec::new(), FormatOptions::default());
        sink.caption(&e).unwrap();
        assert_eq!(
            String::from_utf8(sink.into_inner()).unwrap(),
            "[00:05.0–00:12.3] a dog barks\n"
        );
    }
}

//! JSON lines, one object per caption:
//! `{"file":"a.wav","start":0.0,"end":10.0,"caption":"a woman speaks"}`, plus
//! `"token_ids":[...]` with `print_ids`. Times are seconds (3 decimals).

use super::{FormatOptions, Sink};
use crate::pipeline::CaptionEvent;
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct Line<'a> {
    file: &'a str,
    start: f64,
    end: f64,
    caption: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_ids: Option<&'a [i64]>,
}

pub struct JsonlSink<W: Write> {
    out: W,
    opts: FormatOptions,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(out: W, opts: FormatOptions) -> Self {
        JsonlSink { out, opts }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Formats one caption as a JSON object (no newline).
pub fn format_line(event: &CaptionEvent, opts: &FormatOptions) -> Result<String> {
    let line = Line {
        file: &event.source,
        start: round3(event.start),
        end: round3(event.end),
        caption: &event.caption.text,
        token_ids: opts.print_ids.then_some(event.caption.token_ids.as_slice()),
    };
    Ok(serde_json::to_string(&line)?)
}

impl<W: Write> Sink for JsonlSink<W> {
    fn caption(&mut self, event: &CaptionEvent) -> Result<()> {
        writeln!(self.out, "{}", format_line(event, &self.opts)?)?;
        self.out.flush()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let e = crate::output::text::tests::event();
        let s = format_line(&e, &FormatOptions::default()).unwrap();
        assert_eq!(
            s,
            r#"{"file":"a.wav","start":5.0,"end":12.34,"caption":"a dog barks"}"#
        );
        let o = FormatOptions {
            print_ids: true,
            show_source: false,
        };
        let v: serde_json::Value = serde_json::from_str(&format_line(&e, &o).unwrap()).unwrap();
        assert_eq!(v["token_ids"], serde_json::json!([7, 8, 9, 2]));
    }
}

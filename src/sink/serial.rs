//! Serial-port sink (serialport crate): one line per event (`\r\n`-free `\n` lines), text or JSON.
//! A write error (device unplugged) closes the port; it is reopened on a later event, at most
//! once per [`REOPEN_EVERY`]. A port missing at start is treated the same way
//! ([`SerialSink::open_retrying`]): warned about, then tried again with every event.

use super::event::{Event, EventSink};
use super::format::{event_line, FormatOptions, LineFormat};
use anyhow::{Context, Result};
use std::io::Write;
use std::time::{Duration, Instant};

/// Settings of the serial sink (`[serial]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SerialSettings {
    pub device: String,
    pub baud: u32,
    pub format: LineFormat,
    /// `serial.required`: a port that cannot be opened at start ends `listen`; otherwise it is
    /// warned about and retried.
    pub required: bool,
}

const REOPEN_EVERY: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

pub struct SerialSink {
    path: String,
    baud: u32,
    format: LineFormat,
    port: Option<Box<dyn serialport::SerialPort>>,
    last_open_try: Instant,
}

fn open(path: &str, baud: u32) -> Result<Box<dyn serialport::SerialPort>> {
    serialport::new(path, baud)
        .timeout(WRITE_TIMEOUT)
        .open()
        .with_context(|| format!("cannot open serial port {path} at {baud} baud"))
}

impl SerialSink {
    /// Opens the port now so a wrong path is reported at start-up.
    pub fn open(s: &SerialSettings) -> Result<SerialSink> {
        let port = open(&s.device, s.baud)?;
        Ok(SerialSink {
            path: s.device.clone(),
            baud: s.baud,
            format: s.format,
            port: Some(port),
            last_open_try: Instant::now(),
        })
    }
}

impl SerialSink {
    /// Opens the port, or, when it cannot be opened now (not plugged in yet), warns and starts
    /// closed: the next event tries again, then at most once per [`REOPEN_EVERY`].
    pub fn open_retrying(s: &SerialSettings) -> SerialSink {
        let port = match open(&s.device, s.baud) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!(
                    "{e:#}; starting without it and retrying every {} s",
                    REOPEN_EVERY.as_secs()
                );
                None
            }
        };
        SerialSink {
            path: s.device.clone(),
            baud: s.baud,
            format: s.format,
            port,
            last_open_try: Instant::now()
                .checked_sub(REOPEN_EVERY)
                .unwrap_or_else(Instant::now),
        }
    }
}

impl EventSink for SerialSink {
    fn name(&self) -> String {
        format!("serial {}", self.path)
    }

    fn reopens(&self) -> bool {
        true
    }

    fn emit(&mut self, event: &Event) -> Result<()> {
        let Some(line) = event_line(event, self.format, &FormatOptions::default()) else {
            return Ok(());
        };
        if self.port.is_none() {
            if self.last_open_try.elapsed() < REOPEN_EVERY {
                anyhow::bail!("serial port {} is closed (reopening later)", self.path);
            }
            self.last_open_try = Instant::now();
            self.port = Some(open(&self.path, self.baud)?);
            log::info!("serial port {} reopened", self.path);
        }
        let port = self.port.as_mut().expect("port open");
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        let res = port.write_all(&bytes).and_then(|_| port.flush());
        if let Err(e) = res {
            self.port = None;
            self.last_open_try = Instant::now();
            return Err(e).with_context(|| format!("writing to serial port {}", self.path));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(p) = self.port.as_mut() {
            p.flush()
                .with_context(|| format!("flushing serial port {}", self.path))?;
        }
        Ok(())
    }
}

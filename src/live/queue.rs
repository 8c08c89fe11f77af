//! The bounded window queue between the DSP thread and the inference thread, with its fixed
//! pool of `capacity + 2` window buffers (one being filled, one being captioned, the rest
//! queued): memory stays flat however slow the model is. Lossy sources drop the oldest queued
//! window when the queue is full (counted in [`Counters::dropped_windows`]); a lossless source
//! (a file read as fast as possible) waits for room instead.

use super::health::{inc, Counters};
use anyhow::{bail, Result};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A window waiting for the model.
pub struct QueuedWindow {
    pub index: u64,
    /// Position of the window's first sample in the model-rate stream (what the clip ring
    /// counts); `start`/`end` are seconds, shifted by audio lost to overruns.
    pub stream_start: u64,
    pub start: f64,
    pub end: f64,
    pub samples: Vec<f32>,
    pub valid: usize,
    pub level: f64,
    pub ready: Instant,
}

struct QueueState {
    items: VecDeque<QueuedWindow>,
    free: Vec<Vec<f32>>,
    closed: bool,
    consumer_gone: bool,
}

/// Bounded window queue with a fixed pool of buffers.
pub struct WindowQueue {
    state: Mutex<QueueState>,
    cv: Condvar,
    capacity: usize,
    buffer_len: usize,
}

pub enum Popped {
    Window(QueuedWindow),
    Timeout,
    Closed,
}

impl WindowQueue {
    pub fn new(capacity: usize, buffer_len: usize, counters: &Counters) -> WindowQueue {
        let pool = capacity + 2;
        let free = (0..pool).map(|_| Vec::with_capacity(buffer_len)).collect();
        counters.buffers.store(pool as u64, Ordering::Relaxed);
        WindowQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::with_capacity(capacity + 1),
                free,
                closed: false,
                consumer_gone: false,
            }),
            cv: Condvar::new(),
            capacity,
            buffer_len,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take_buffer(&self, counters: &Counters) -> Vec<f32> {
        let mut s = self.lock();
        s.free.pop().unwrap_or_else(|| {
            // Cannot happen while the pool invariant holds; counted so tests would see it.
            inc(&counters.buffers);
            Vec::with_capacity(self.buffer_len)
        })
    }

    /// Queues a window. Lossy: drops the oldest queued window when full. Lossless: waits.
    pub fn push(&self, w: QueuedWindow, lossless: bool, counters: &Counters) -> Result<()> {
        let mut s = self.lock();
        while lossless && s.items.len() >= self.capacity && !s.consumer_gone {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.consumer_gone {
            bail!("the inference thread stopped");
        }
        if s.items.len() >= self.capacity {
            if let Some(old) = s.items.pop_front() {
                s.free.push(old.samples);
                let n = counters.dropped_windows.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_power_of_two() {
                    log::warn!(
                        "the model is slower than real time: dropped the window at {:.1}-{:.1} s ({n} windows dropped so far)",
                        old.start,
                        old.end
                    );
                }
            }
        }
        s.items.push_back(w);
        let depth = s.items.len() as u64;
        counters.max_queued.fetch_max(depth, Ordering::Relaxed);
        drop(s);
        self.cv.notify_all();
        Ok(())
    }

    pub fn pop(&self, timeout: Duration) -> Popped {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(w) = s.items.pop_front() {
                drop(s);
                self.cv.notify_all();
                return Popped::Window(w);
            }
            if s.closed {
                return Popped::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Popped::Timeout;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn give_back(&self, mut buf: Vec<f32>) {
        buf.clear();
        self.lock().free.push(buf);
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    pub fn consumer_gone(&self) {
        self.lock().consumer_gone = true;
        self.cv.notify_all();
    }
}

//! The RAM ring of recent model-rate audio that clips are cut from, and the queue of clips
//! waiting to be cut, behind one lock.
//!
//! Invariants:
//! - the ring is allocated once (`capacity` samples) and never grows; the job queue holds at
//!   most [`MAX_PENDING`] clips (a request beyond that is refused and counted by the caller);
//! - positions are model-rate stream samples, the count [`crate::audio::stream::WindowStream`]
//!   gives windows, so a window's `start` is also its position here;
//! - the DSP thread is the only writer ([`History::push`]); it holds the lock for one copy;
//! - lossy sources (a microphone) never wait: audio a late clip needed is overwritten and the
//!   clip comes out shorter (logged). A lossless source (a file read as fast as possible) waits
//!   instead until the oldest pending clip has been cut, so its clips are always whole.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Clips waiting to be cut at most.
pub const MAX_PENDING: usize = 16;

/// A clip to cut: stream samples `[start, end)` into `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub start: u64,
    pub end: u64,
    pub path: PathBuf,
}

struct State {
    ring: Vec<f32>,
    /// Samples ever pushed; the ring holds `[total - min(total, capacity), total)`.
    total: u64,
    /// No more audio will come.
    input_done: bool,
    /// No more jobs will come.
    jobs_closed: bool,
    /// The writer thread is gone (then nothing waits for it).
    writer_gone: bool,
    jobs: VecDeque<Job>,
}

/// The shared ring and job queue.
pub struct History {
    state: Mutex<State>,
    cv: Condvar,
    capacity: usize,
    lossless: bool,
}

/// What [`History::next_job`] hands the writer.
pub enum Next {
    /// Cut: `job`, whose samples from `first` on were copied into the buffer (fewer than asked
    /// when the ring had already moved past `job.start` or the input ended early).
    Cut { job: Job, first: u64 },
    /// No more jobs will come.
    Done,
}

impl History {
    /// A ring of `capacity` samples (at least 1).
    pub fn new(capacity: usize, lossless: bool) -> History {
        let capacity = capacity.max(1);
        History {
            state: Mutex::new(State {
                ring: vec![0.0; capacity],
                total: 0,
                input_done: false,
                jobs_closed: false,
                writer_gone: false,
                jobs: VecDeque::with_capacity(MAX_PENDING),
            }),
            cv: Condvar::new(),
            capacity,
            lossless,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends samples (the DSP thread). Lossless: waits while the samples would overwrite
    /// audio a pending clip still needs.
    pub fn push(&self, mut samples: &[f32]) {
        let cap = self.capacity as u64;
        let mut s = self.lock();
        while !samples.is_empty() {
            let room = match (self.lossless && !s.writer_gone, s.jobs.front()) {
                (true, Some(job)) => {
                    // Oldest sample still needed; audio already lost cannot be protected.
                    let keep = job.start.max(s.total.saturating_sub(cap));
                    (keep + cap).saturating_sub(s.total) as usize
                }
                _ => samples.len(),
            };
            if room == 0 {
                s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let n = room.min(samples.len());
            for &x in &samples[..n] {
                let i = (s.total % cap) as usize;
                s.ring[i] = x;
                s.total += 1;
            }
            samples = &samples[n..];
            self.cv.notify_all();
        }
    }

    /// No more audio (end of the stream): pending clips are cut from what there is.
    pub fn input_done(&self) {
        self.lock().input_done = true;
        self.cv.notify_all();
    }

    /// Queues a clip (the inference thread). `false`: the queue is full (the clip is refused).
    pub fn request(&self, job: Job) -> bool {
        let mut s = self.lock();
        if s.jobs.len() >= MAX_PENDING || s.writer_gone || s.jobs_closed {
            return false;
        }
        s.jobs.push_back(job);
        drop(s);
        self.cv.notify_all();
        true
    }

    /// No more clip requests.
    pub fn close_jobs(&self) {
        self.lock().jobs_closed = true;
        self.cv.notify_all();
    }

    /// The writer thread ended: nothing waits for it any more.
    pub fn writer_gone(&self) {
        let mut s = self.lock();
        s.writer_gone = true;
        s.jobs.clear();
        drop(s);
        self.cv.notify_all();
    }

    /// Samples pushed so far.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// The writer: waits until the oldest job's audio is all there (or the input ended), copies
    /// it into `buf` (cleared first; its capacity is reused) and hands the job over.
    pub fn next_job(&self, buf: &mut Vec<f32>) -> Next {
        let cap = self.capacity as u64;
        let mut s = self.lock();
        loop {
            match s.jobs.front() {
                None if s.jobs_closed => return Next::Done,
                // Ready: all its audio is there, or no more will come, or more would overwrite
                // its start (a ring too small for the clip never deadlocks a lossless source).
                Some(job)
                    if s.total >= job.end
                        || s.input_done
                        || s.total >= job.start.saturating_add(cap) =>
                {
                    break
                }
                _ => s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
            }
        }
        let Some(job) = s.jobs.pop_front() else {
            return Next::Done;
        };
        let oldest = s.total.saturating_sub(cap);
        let first = job.start.max(oldest).min(s.total);
        let last = job.end.min(s.total).max(first);
        buf.clear();
        for pos in first..last {
            buf.push(s.ring[(pos % cap) as usize]);
        }
        drop(s);
        self.cv.notify_all();
        Next::Cut { job, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn job(start: u64, end: u64) -> Job {
        Job {
            start,
            end,
            path: PathBuf::from("x"),
        }
    }

    #[test]
    fn cuts_the_exact_range() {
        let h = History::new(100, false);
        let x: Vec<f32> = (0..250).map(|i| i as f32).collect();
        h.push(&x[..150]);
        assert!(h.request(job(60, 170)));
        h.push(&x[150..]);
        let mut buf = Vec::new();
        let Next::Cut { job: j, first } = h.next_job(&mut buf) else {
            panic!()
        };
        // Lossy: by the time it is cut the ring holds 150..250, so the clip starts at 150.
        assert_eq!((j.start, first), (60, 150));
        assert_eq!(buf, x[150..170]);
        h.close_jobs();
        assert!(matches!(h.next_job(&mut buf), Next::Done));
    }

    #[test]
    fn lossless_waits_for_the_writer() {
        let h = Arc::new(History::new(100, true));
        let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        h.push(&x[..50]);
        assert!(h.request(job(10, 90)));
        let w = h.clone();
        let writer = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut cuts = Vec::new();
            while let Next::Cut { job, first } = w.next_job(&mut buf) {
                cuts.push((job.start, first, buf.clone()));
            }
            cuts
        });
        // Would overwrite sample 10 at total 110: waits until the clip is cut.
        h.push(&x[50..1000]);
        h.input_done();
        h.close_jobs();
        let cuts = writer.join().unwrap();
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].1, 10);
        assert_eq!(cuts[0].2, x[10..90]);
    }

    #[test]
    fn queue_is_bounded_and_input_end_cuts_short() {
        let h = History::new(10, false);
        for _ in 0..MAX_PENDING {
            assert!(h.request(job(0, 5)));
        }
        assert!(!h.request(job(0, 5)));
        h.push(&[1.0, 2.0]);
        h.input_done();
        let mut buf = Vec::new();
        let Next::Cut { first, .. } = h.next_job(&mut buf) else {
            panic!()
        };
        assert_eq!((first, buf.as_slice()), (0, &[1.0, 2.0][..]));
        h.writer_gone();
        assert!(!h.request(job(0, 5)));
    }
}

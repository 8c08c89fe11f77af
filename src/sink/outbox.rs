//! The MQTT sink's bounded outbox: messages wait here while the broker is unreachable. When it
//! is full, captions are kept over health reports and the oldest message goes first: a new
//! message evicts the oldest queued health report, else the oldest caption; a new health report
//! into an outbox full of captions is itself the one dropped. Every drop is counted.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// One message for the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    /// A periodic health report: the first to go when the outbox is full.
    pub expendable: bool,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Message>,
    dropped: u64,
    /// Taken by the sender and not yet handed on (counts as queued for `is_empty`).
    in_hand: usize,
}

/// A bounded queue shared by the sink (producer) and its sender thread (consumer).
pub struct Outbox {
    capacity: usize,
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `m`, dropping what the policy says when full; false when `m` itself was dropped.
    pub fn push(&self, m: Message) -> bool {
        let mut g = self.lock();
        if g.queue.len() + g.in_hand >= self.capacity {
            let victim = g.queue.iter().position(|q| q.expendable);
            match victim {
                Some(i) => {
                    g.queue.remove(i);
                }
                None if m.expendable || g.queue.is_empty() => {
                    g.dropped += 1;
                    return false;
                }
                None => {
                    g.queue.pop_front();
                }
            }
            g.dropped += 1;
        }
        g.queue.push_back(m);
        drop(g);
        self.ready.notify_one();
        true
    }

    /// The oldest message (waiting up to `wait`); the sender calls [`Outbox::handed`] once it
    /// has passed it on.
    pub fn take(&self, wait: Duration) -> Option<Message> {
        let mut g = self.lock();
        if g.queue.is_empty() {
            g = self
                .ready
                .wait_timeout(g, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let m = g.queue.pop_front()?;
        g.in_hand += 1;
        Some(m)
    }

    /// The message from the last [`Outbox::take`] was passed on (or abandoned).
    pub fn handed(&self) {
        let mut g = self.lock();
        g.in_hand = g.in_hand.saturating_sub(1);
    }

    /// Messages dropped so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Nothing queued and nothing in the sender's hand.
    pub fn is_empty(&self) -> bool {
        let g = self.lock();
        g.queue.is_empty() && g.in_hand == 0
    }

    pub fn len(&self) -> usize {
        let g = self.lock();
        g.queue.len() + g.in_hand
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize, expendable: bool) -> Message {
        Message {
            topic: if expendable { "h" } else { "c" }.into(),
            payload: n.to_string(),
            expendable,
        }
    }

    fn payloads(o: &Outbox) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = o.take(Duration::ZERO) {
            o.handed();
            out.push(m.payload);
        }
        out
    }

    #[test]
    fn full_outbox_drops_health_first_then_the_oldest_caption() {
        let o = Outbox::new(3);
        assert!(o.push(msg(0, false)));
        assert!(o.push(msg(1, true)));
        assert!(o.push(msg(2, false)));
        assert!(o.push(msg(3, false)), "evicts the health report");
        assert!(
            !o.push(msg(4, true)),
            "a new health report is the one dropped"
        );
        assert!(o.push(msg(5, false)), "evicts the oldest caption");
        assert_eq!(o.dropped(), 3);
        assert_eq!(payloads(&o), ["2", "3", "5"]);
        assert!(o.is_empty());
    }

    #[test]
    fn a_message_in_the_senders_hand_still_counts() {
        let o = Outbox::new(2);
        o.push(msg(0, false));
        o.push(msg(1, false));
        let m = o.take(Duration::ZERO).unwrap();
        assert_eq!(m.payload, "0");
        assert!(!o.is_empty());
        o.push(msg(2, false));
        assert_eq!(o.dropped(), 1);
        o.handed();
        assert_eq!(payloads(&o), ["2"]);
    }
}

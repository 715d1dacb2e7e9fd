//! A bounded queue between a backend's receiving thread and the subscriber.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Behaviour of [`MessageQueue::push`] on a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Drop the oldest message (keep-last history).
    DropOldest,
    /// Wait until the subscriber takes one (keep-all history).
    Wait,
}

#[derive(Debug)]
struct State<M> {
    messages: VecDeque<M>,
    closed: bool,
    dropped: u64,
}

/// A bounded FIFO queue with blocking receive and a closed flag.
#[derive(Debug)]
pub(crate) struct MessageQueue<M> {
    state: Mutex<State<M>>,
    changed: Condvar,
    capacity: usize,
    when_full: WhenFull,
}

impl<M> MessageQueue<M> {
    /// Creates a queue of `capacity` messages (at least 1).
    pub(crate) fn new(capacity: usize, when_full: WhenFull) -> Self {
        Self {
            state: Mutex::new(State {
                messages: VecDeque::with_capacity(capacity.max(1)),
                closed: false,
                dropped: 0,
            }),
            changed: Condvar::new(),
            capacity: capacity.max(1),
            when_full,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A panic while holding the lock leaves the queue itself consistent, so a
        // poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a message. Returns false when the queue is closed and the message was
    /// discarded.
    pub(crate) fn push(&self, message: M) -> bool {
        let mut state = self.lock();
        while state.messages.len() >= self.capacity && !state.closed {
            match self.when_full {
                WhenFull::DropOldest => {
                    state.messages.pop_front();
                    state.dropped += 1;
                }
                WhenFull::Wait => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
        if state.closed {
            return false;
        }
        state.messages.push_back(message);
        drop(state);
        self.changed.notify_all();
        true
    }

    /// Counts a message that was lost before it reached the queue.
    pub(crate) fn count_dropped(&self) {
        self.lock().dropped += 1;
    }

    /// Takes the oldest message. `Err(())` when the queue is empty and closed.
    pub(crate) fn try_pop(&self) -> Result<Option<M>, ()> {
        let mut state = self.lock();
        let message = state.messages.pop_front();
        let closed = state.closed;
        drop(state);
        match message {
            Some(message) => {
                self.changed.notify_all();
                Ok(Some(message))
            }
            None if closed => Err(()),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for a message. `Err(())` when the queue is empty and closed.
    pub(crate) fn pop_timeout(&self, timeout: Duration) -> Result<Option<M>, ()> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(message) = state.messages.pop_front() {
                drop(state);
                self.changed.notify_all();
                return Ok(Some(message));
            }
            if state.closed {
                return Err(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Marks the queue closed and wakes every waiter. Queued messages stay readable.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Returns the number of dropped messages.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    #[test]
    fn keep_last_queue_drops_oldest() {
        let queue = MessageQueue::new(2, WhenFull::DropOldest);
        for value in 1..=3 {
            assert!(queue.push(value));
        }

        assert_eq!(queue.try_pop(), Ok(Some(2)));
        assert_eq!(queue.try_pop(), Ok(Some(3)));
        assert_eq!(queue.try_pop(), Ok(None));
        assert_eq!(queue.dropped(), 1);
    }

    #[test]
    fn keep_all_queue_waits_for_reader() {
        let queue = Arc::new(MessageQueue::new(1, WhenFull::Wait));
        queue.push(1);
        let writer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.push(2))
        };

        assert_eq!(queue.pop_timeout(Duration::from_secs(1)), Ok(Some(1)));
        assert_eq!(queue.pop_timeout(Duration::from_secs(5)), Ok(Some(2)));
        assert!(writer.join().unwrap_or(false));
        assert_eq!(queue.dropped(), 0);
    }

    #[test]
    fn closed_queue_drains_then_reports_closed() {
        let queue = MessageQueue::new(4, WhenFull::DropOldest);
        queue.push("a");
        queue.close();

        assert!(!queue.push("b"));
        assert_eq!(queue.pop_timeout(Duration::ZERO), Ok(Some("a")));
        assert_eq!(queue.pop_timeout(Duration::from_millis(10)), Err(()));
    }

    #[test]
    fn empty_queue_times_out() {
        let queue: MessageQueue<u8> = MessageQueue::new(1, WhenFull::DropOldest);
        let started = Instant::now();

        assert_eq!(queue.pop_timeout(Duration::from_millis(30)), Ok(None));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}

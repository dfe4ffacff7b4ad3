//! What the bounce MX may hold in memory for messages at once.
//!
//! The classifier reads a message whole, so the MX holds each message it receives until it
//! is classified. Without a bound, `maxSessions` senders of `maxMessageBytes` each (100 ×
//! 10 MiB by default) would take a gigabyte, and one classification of a hostile message
//! takes about eleven times its size (a 10 MiB plain-text report; a multipart of 130,000
//! parts did too before `bounce_classify` bounded the parts it reads): four such messages at
//! once took a worker to 263 MB, past the pod's 256 MiB limit, and an OOM kill ends every
//! session in progress (BENCHMARKS.md, "The bounce MX").
//! So two budgets, both in proportion to `maxMessageBytes`:
//!
//! - [`HELD_MESSAGES`] times it for the messages being received or waiting to be
//!   classified, beyond the first [`UNCOUNTED`] bytes of each. A message is given room as
//!   it arrives; one that finds none is read to its end and dropped, and answered
//!   `452 4.3.1`, so its sender keeps it and retries ([`MessageMemory::hold`]).
//! - once it for the messages being classified: a message waits until the sizes of those
//!   being classified, its own included, come to at most `maxMessageBytes`
//!   ([`MessageMemory::classify`]), so the largest is classified alone.
//!
//! The worker's memory is then at most about 30 MiB, plus (`HELD_MESSAGES` + 12) times
//! `maxMessageBytes`, plus `maxSessions` times [`UNCOUNTED`]: 205 MiB with the defaults
//! (measured: 209 MiB for six hostile messages and thirty large ones at once), under the
//! 256 MiB the operator gives the pod.

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::budget::{ByteBudget, held_bytes};

/// How many messages of the largest size the MX holds at once (received or being
/// received, not yet classified), beyond their [`UNCOUNTED`] bytes.
pub const HELD_MESSAGES: usize = 4;

/// The first bytes of every message, not counted: real bounces are that small (the
/// corpus's largest is 73 KB, its median 2.6 KB), so senders that hold the budget with
/// large messages cannot keep them out. At most `maxSessions` times this (12.5 MiB by
/// default) comes on top of the budget.
pub const UNCOUNTED: usize = 128 << 10;

pub struct MessageMemory {
    held: ByteBudget,
    /// The bytes held, for `bounceops_smtp_message_bytes_held`.
    gauge: IntGauge,
    classifying: ByteBudget,
    /// Messages classified at once: one per core.
    cores: Semaphore,
}

impl MessageMemory {
    /// Budgets for messages of at most `max_message_bytes`, classified `cores` at a time;
    /// `gauge` shows the bytes held.
    pub fn new(max_message_bytes: usize, cores: usize, gauge: IntGauge) -> MessageMemory {
        // One read past the bound is held before a message is known to be too big.
        let largest = (max_message_bytes + super::conn::READ_CHUNK) as u64;
        MessageMemory {
            held: ByteBudget::new(largest.saturating_mul(HELD_MESSAGES as u64)),
            gauge,
            classifying: ByteBudget::new(largest),
            cores: Semaphore::new(cores.max(1)),
        }
    }

    /// An empty hold, for one message about to be received.
    pub fn hold(&self) -> Held {
        Held {
            budget: self.held.clone(),
            gauge: self.gauge.clone(),
            permit: None,
        }
    }

    /// Waits until `bytes` more may be classified (and a core is free), for as long as
    /// the returned guard lives.
    pub async fn classify(&self, bytes: usize) -> Classifying<'_> {
        // Cores first, then bytes: whoever holds bytes has a core and is running, so no
        // one waits on a waiter.
        let core = self.cores.acquire().await.expect("never closed");
        let bytes = self.classifying.take(bytes as u64).await;
        Classifying {
            _core: core,
            _bytes: bytes,
        }
    }
}

/// Room for one message as it is received: given up when dropped, with the message.
pub struct Held {
    budget: ByteBudget,
    gauge: IntGauge,
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Makes room for `bytes` in all (the first [`UNCOUNTED`] of them free), if the budget
    /// has it; `false` leaves the room as it was.
    pub fn grow_to(&mut self, bytes: usize) -> bool {
        let before = self.bytes();
        let grown = self
            .budget
            .grow(&mut self.permit, bytes.saturating_sub(UNCOUNTED) as u64);
        self.gauge.add((self.bytes() - before) as i64);
        grown
    }

    /// Gives the room back: the message is dropped.
    pub fn release(&mut self) {
        self.gauge.sub(self.bytes() as i64);
        self.permit = None;
    }

    /// Bytes this hold takes of the budget.
    pub fn bytes(&self) -> usize {
        held_bytes(&self.permit) as usize
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

/// A classification in progress, as [`MessageMemory::classify`] allowed it.
pub struct Classifying<'a> {
    _core: SemaphorePermit<'a>,
    _bytes: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge() -> IntGauge {
        IntGauge::new("held", "held").unwrap()
    }

    #[test]
    fn holds_share_the_budget_and_give_it_back() {
        let m = MessageMemory::new(64 << 10, 2, gauge());
        let budget = m.held.free_bytes() as usize / 1024;
        assert_eq!(
            budget,
            ((64 << 10) + super::super::conn::READ_CHUNK) * 4 / 1024
        );
        let mut a = m.hold();
        assert!(a.grow_to(UNCOUNTED));
        assert_eq!(a.bytes(), 0, "a small message takes nothing");
        assert!(a.grow_to(UNCOUNTED + 1));
        assert!(a.grow_to(UNCOUNTED + 1024), "within the first KiB");
        assert_eq!(a.bytes(), 1024);
        assert!(a.grow_to(UNCOUNTED + budget * 1024));
        assert_eq!(m.gauge.get(), budget as i64 * 1024);
        let mut b = m.hold();
        assert!(b.grow_to(UNCOUNTED), "small messages still fit");
        assert!(!b.grow_to(UNCOUNTED + 1), "nothing left");
        assert_eq!(b.bytes(), 0);
        drop(a);
        assert!(b.grow_to(UNCOUNTED + budget * 1024), "all of it back");
        assert!(
            !b.grow_to(UNCOUNTED + budget * 1024 + 1),
            "never past the budget"
        );
        assert_eq!(b.bytes(), budget * 1024);
        b.release();
        assert_eq!(m.gauge.get(), 0);
        assert!(b.grow_to(UNCOUNTED + 5000));
        drop(b);
        assert_eq!(m.gauge.get(), 0);
        assert_eq!(m.held.free_bytes() as usize, budget * 1024);
    }

    #[tokio::test]
    async fn the_largest_message_is_classified_alone() {
        let m = MessageMemory::new(1 << 20, 4, gauge());
        let small = m.classify(100 << 10).await;
        let other = m.classify(100 << 10).await;
        let mut large = std::pin::pin!(m.classify(2 << 20));
        assert!(
            futures::FutureExt::now_or_never(large.as_mut()).is_none(),
            "waits while smaller ones are classified"
        );
        drop((small, other));
        let large = large.await;
        assert_eq!(m.classifying.free_bytes(), 0);
        drop(large);
        let large = m.classify(2 << 20).await;
        assert_eq!(m.classifying.free_bytes(), 0);
        drop(large);
        assert_eq!(m.classifying.free_bytes(), m.classifying.bytes());
    }
}

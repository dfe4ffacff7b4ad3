//! A budget of bytes that tasks may have in memory at once, shared between them: the
//! provider webhooks' bodies not yet verified (`http::providers`), what the bounce MX holds
//! and classifies (`smtp::memory`) and what the mailbox scans download (`mailbox::scan`).
//! Counted in kibibytes, so a semaphore's `u32` permits reach past the 1 GiB
//! `maxMessageBytes` allows, several times over.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

#[derive(Clone)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    kib: u32,
}

impl ByteBudget {
    pub fn new(bytes: u64) -> ByteBudget {
        let kib = kib(bytes);
        ByteBudget {
            permits: Arc::new(Semaphore::new(kib as usize)),
            kib,
        }
    }

    /// Waits until `bytes` are free and takes them until the permit is dropped; a request
    /// larger than the whole budget waits for all of it.
    pub async fn take(&self, bytes: u64) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_many_owned(kib(bytes).min(self.kib))
            .await
            .expect("never closed")
    }

    /// Grows `taken` (what one task holds) to cover `bytes` in all, if they are free now;
    /// `false` leaves it as it was. Never waits.
    pub fn grow(&self, taken: &mut Option<OwnedSemaphorePermit>, bytes: u64) -> bool {
        let held = held_kib(taken);
        let wanted = kib(bytes);
        if wanted <= held {
            return true;
        }
        let Ok(more) = self.permits.clone().try_acquire_many_owned(wanted - held) else {
            return false;
        };
        match taken {
            Some(permit) => permit.merge(more),
            None => *taken = Some(more),
        }
        true
    }

    /// The whole budget, in bytes (rounded up to a KiB).
    pub fn bytes(&self) -> u64 {
        u64::from(self.kib) * 1024
    }

    /// What is not taken, in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * 1024
    }
}

/// The bytes a permit of a [`ByteBudget`] holds.
pub fn held_bytes(taken: &Option<OwnedSemaphorePermit>) -> u64 {
    u64::from(held_kib(taken)) * 1024
}

fn held_kib(taken: &Option<OwnedSemaphorePermit>) -> u32 {
    taken.as_ref().map_or(0, |p| p.num_permits() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn takers_share_the_budget_and_give_it_back() {
        let b = ByteBudget::new(20 << 20);
        let small = b.take(8 << 20).await;
        let other = b.take(8 << 20).await;
        let mut third = std::pin::pin!(b.take(8 << 20));
        assert!(
            futures::FutureExt::now_or_never(third.as_mut()).is_none(),
            "a third of 8 MiB waits"
        );
        drop(small);
        let third = third.await;
        drop((other, third));
        let whole = b.take(1 << 40).await;
        assert_eq!(
            whole.num_permits(),
            20 << 10,
            "more than it takes all of it"
        );
        assert_eq!(b.free_bytes(), 0);
        drop(whole);
        assert_eq!(b.free_bytes(), b.bytes());
    }

    #[test]
    fn a_permit_grows_while_the_budget_has_room() {
        let b = ByteBudget::new(64 << 10);
        let mut a = None;
        assert!(b.grow(&mut a, 0));
        assert_eq!(held_bytes(&a), 0);
        assert!(b.grow(&mut a, 1));
        assert!(b.grow(&mut a, 1024), "within the first KiB");
        assert_eq!(held_bytes(&a), 1024);
        assert!(b.grow(&mut a, 64 << 10));
        let mut c = None;
        assert!(!b.grow(&mut c, 1), "nothing left");
        assert_eq!(held_bytes(&c), 0);
        assert!(!b.grow(&mut a, (64 << 10) + 1), "never past the budget");
        assert_eq!(held_bytes(&a), 64 << 10);
        a = None;
        assert!(b.grow(&mut c, 64 << 10), "all of it back");
        assert_eq!(b.free_bytes(), 0);
        drop(c);
        assert!(a.is_none());
        assert_eq!(b.free_bytes(), 64 << 10);
    }
}

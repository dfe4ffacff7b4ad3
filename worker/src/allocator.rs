//! How the worker's allocator (mimalloc, `main.rs`) hands memory back, set once at start-up.
//!
//! mimalloc's defaults favour speed over resident memory in two ways that cost a worker the
//! internet can post to its 64 MiB target (BENCHMARKS.md, "Unauthenticated load"):
//!
//! - **Transparent huge pages.** mimalloc asks the kernel for huge pages on its arena
//!   (`madvise(MADV_HUGEPAGE)`), which the kernel honours on the usual `madvise` setting
//!   (and on `always` without being asked): every 2 MiB region touched at all is resident
//!   whole. Measured, 60 of a 79 MiB peak were huge pages, and an idle worker held 23 MiB
//!   instead of 14. The worker turns them off for itself (`PR_SET_THP_DISABLE`).
//! - **Purge delay.** Memory freed is given back to the kernel 1 s later (mimalloc 3's
//!   default; mimalloc 2 waited 10 ms): under a burst of 1 MiB bodies, a second's worth of
//!   freed bodies stays resident next to the live ones. The worker waits 10 ms.
//!
//! mimalloc's own variables win over both (`MIMALLOC_ALLOW_THP=1`,
//! `MIMALLOC_PURGE_DELAY=<ms>`): mimalloc reads them when the process starts, and the
//! worker then leaves that setting alone.

use std::ffi::{c_int, c_long};

/// How long freed memory stays resident before mimalloc gives it back, in milliseconds.
pub const PURGE_DELAY_MS: c_long = 10;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t`: libmimalloc-sys names only some
/// options, not this one. Its position has not moved from mimalloc 2.1 to 3.3; a test reads
/// mimalloc's default through it to make sure it is still the purge delay.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// What `tune` did, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Transparent huge pages turned off for the process; `None` when `MIMALLOC_ALLOW_THP`
    /// decides, `Some(false)` when the kernel refused.
    pub huge_pages_off: Option<bool>,
    /// The purge delay set; `None` when `MIMALLOC_PURGE_DELAY` decides.
    pub purge_delay_ms: Option<c_long>,
}

/// Applies the settings above, except those mimalloc's own variables give. Call it first
/// in `main`, before any thread starts: mimalloc's options are not thread-safe to set.
pub fn tune() -> Tuning {
    tune_with(|name| std::env::var_os(name).is_some())
}

fn tune_with(is_set: impl Fn(&str) -> bool) -> Tuning {
    let huge_pages_off = (!is_set("MIMALLOC_ALLOW_THP")).then(|| {
        // SAFETY: prctl(PR_SET_THP_DISABLE, 1) takes integers only and changes a flag of
        // the process, no memory of ours. It also applies to memory mapped before it.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    });
    let purge_delay_ms = (!is_set("MIMALLOC_PURGE_DELAY")).then(|| {
        // SAFETY: sets an integer option of the allocator; called before other threads
        // exist, as mimalloc requires. mimalloc reads it each time it schedules a purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
        PURGE_DELAY_MS
    });
    Tuning {
        huge_pages_off,
        purge_delay_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge_delay() -> c_long {
        // SAFETY: reads an integer option.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    fn huge_pages_disabled() -> bool {
        // SAFETY: reads a flag of the process.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    /// One test, as it changes the process: first what is left alone, then what is set.
    #[test]
    fn sets_what_mimallocs_variables_leave_and_nothing_else() {
        // mimalloc 3's default purge delay: the option read is the purge delay.
        assert_eq!(
            purge_delay(),
            1000,
            "MI_OPTION_PURGE_DELAY is not the purge delay"
        );
        let before = huge_pages_disabled();

        let left = tune_with(|_| true);
        assert_eq!(
            left,
            Tuning {
                huge_pages_off: None,
                purge_delay_ms: None
            }
        );
        assert_eq!(purge_delay(), 1000);
        assert_eq!(huge_pages_disabled(), before);

        let set = tune_with(|_| false);
        assert_eq!(
            set,
            Tuning {
                huge_pages_off: Some(true),
                purge_delay_ms: Some(PURGE_DELAY_MS)
            }
        );
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
        assert!(huge_pages_disabled());
    }
}

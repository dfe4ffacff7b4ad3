//! Every advisory lock the worker takes, in one place, so that no two of them can ever
//! share a key by accident, nor collide with another application's locks on the same
//! database.
//!
//! Two-key locks (`pg_advisory_*lock(int4, int4)`) take one of these namespaces as their
//! first key; Postgres keeps them apart from one-key locks (`(int8)`), which the worker uses
//! only for migrations.

/// Per subscriber, for the length of a recording transaction; the second key is the
/// subscriber's id.
pub const SUBSCRIBER: i32 = 0x626f_756e; // "boun"

/// Per mailbox, for the length of a scan (session level, on a connection of its own); the
/// second key is `hashtext` of the mailbox's identity.
pub const MAILBOX: i32 = 0x6d62_6f78; // "mbox"

/// One-key lock held while migrations run, so that replicas starting together migrate
/// one at a time.
pub const MIGRATE: &str = "bounceops.migrate";

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

/// The halves of `bounceops.processed_events`, key 0: every claim of event ids takes it
/// shared before it reads which half is current, a rotation of the halves exclusively
/// (worker/migrations/0008_event_id_halves.sql, where its value is written out, as SQL has
/// no access to this file).
pub const CLAIM_HALVES: i32 = 0x636c_6d73; // "clms"

/// One-key lock held while migrations run, so that replicas starting together migrate
/// one at a time.
pub const MIGRATE: &str = "bounceops.migrate";

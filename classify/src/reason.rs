//! Owns "why it bounced": one [`Reason`] per failed recipient, in Sisimai's
//! vocabulary, decided from the DSN status, the SMTP reply code and the
//! diagnostic text (`docs/reasons.md` describes each reason and the order of
//! the evidence).
//!
//! The order: a provider's own words, told by its host (`PROVIDERS`, as
//! Sisimai's per-provider tables come first); words that name a cause
//! outright (DMARC, a block list, a full mailbox) outrank the status,
//! because servers put those words on any 5.7.1 or 5.0.0; then a status
//! whose detail is specific (5.1.1, 5.2.2, 4.4.7); then weaker words ("user
//! unknown", "host not found"), read with the SMTP command that was
//! refused (`command`: an unknown user after DATA is `filtered`);
//! then the refused command alone (HELO: `blocked`, MAIL FROM: `rejected`);
//! then what the status class and subject alone suggest; then the reply
//! code. The phrase tables and the status tables below are the data of each
//! step, each entry with its source.

use crate::command::{self, Command};
use crate::phrases::Phrases;
use serde::Serialize;
use std::sync::LazyLock;

/// Declares [`Reason`] from one list of (variant, name), so the enum, its
/// serialized names, `as_str` and `ALL` cannot drift apart.
macro_rules! reasons {
    ($($variant:ident => $name:literal,)*) => {
        /// Why a recipient's mail failed (or, for the last three, what the
        /// message was instead). The serialized names are Sisimai's, so its
        /// documentation describes each one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Reason {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl Reason {
            /// Every reason, in the order of the vocabulary.
            pub const ALL: &[Reason] = &[$(Reason::$variant,)*];

            /// The serialized name (`userunknown`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }
        }
    };
}

reasons! {
    UserUnknown => "userunknown",
    MailboxFull => "mailboxfull",
    HostUnknown => "hostunknown",
    Filtered => "filtered",
    Blocked => "blocked",
    SpamDetected => "spamdetected",
    Expired => "expired",
    Suspend => "suspend",
    Rejected => "rejected",
    PolicyViolation => "policyviolation",
    AuthFailure => "authfailure",
    RequirePtr => "requireptr",
    NoRelaying => "norelaying",
    TooManyConn => "toomanyconn",
    Speeding => "speeding",
    MesgTooBig => "mesgtoobig",
    ExceedLimit => "exceedlimit",
    ContentError => "contenterror",
    SecurityError => "securityerror",
    VirusDetected => "virusdetected",
    BadReputation => "badreputation",
    SystemError => "systemerror",
    NetworkError => "networkerror",
    NotAccept => "notaccept",
    HasMoved => "hasmoved",
    SyntaxError => "syntaxerror",
    MailerError => "mailererror",
    NotCompliantRfc => "notcompliantrfc",
    OnHold => "onhold",
    Undefined => "undefined",
    Feedback => "feedback",
    Vacation => "vacation",
    Delivered => "delivered",
}

/// Whose problem a reason usually is: the recipient's mailbox or domain, the
/// sender's reputation or setup, or neither for sure (the network, the
/// receiving system, or too little said).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Recipient,
    Sender,
    Unknown,
}

impl Reason {
    /// The reason named `name` (as serialized), if it is one.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// Who usually has to act. A recipient-side reason says the address
    /// itself is the problem (gone, full, disabled); a sender-side one says
    /// the sending system's reputation, authentication or content is, and
    /// removing the address would hide it.
    pub fn side(self) -> Side {
        match self {
            Reason::UserUnknown
            | Reason::MailboxFull
            | Reason::HostUnknown
            | Reason::Filtered
            | Reason::Suspend
            | Reason::HasMoved
            | Reason::NotAccept
            | Reason::ExceedLimit
            | Reason::Speeding
            | Reason::Vacation => Side::Recipient,
            Reason::Blocked
            | Reason::SpamDetected
            | Reason::Rejected
            | Reason::PolicyViolation
            | Reason::AuthFailure
            | Reason::RequirePtr
            | Reason::NoRelaying
            | Reason::TooManyConn
            | Reason::MesgTooBig
            | Reason::ContentError
            | Reason::SecurityError
            | Reason::VirusDetected
            | Reason::BadReputation
            | Reason::SyntaxError
            | Reason::NotCompliantRfc
            | Reason::Feedback => Side::Sender,
            Reason::Expired
            | Reason::SystemError
            | Reason::NetworkError
            | Reason::MailerError
            | Reason::OnHold
            | Reason::Undefined
            | Reason::Delivered => Side::Unknown,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Phrases that name a cause outright, most telling first: where two lists
/// match one text, the earlier wins ("Virus detected; content rejected" is
/// a virus, not a spam verdict; a DMARC rejection that mentions the sender's
/// domain is an authentication failure, not a refused sender). They outrank
/// any status.
const DECISIVE: &[(Reason, &[&str])] = &[
    (Reason::VirusDetected, &["virus", "malware", "infected"]),
    (
        Reason::SpamDetected,
        &[
            "spam classification",
            // A URL block list judges the message, not the sending host.
            "blacklisted url",
            "content rejected",
            "detected as spam",
            "considered spam",
            "looks like spam",
            "likely spam",
            "spam message",
            ", ube,",
            // The usual words of content filters (SpamAssassin, Rspamd,
            // appliances): the message, not the host, was judged.
            "identified as spam",
            "classified as spam",
            "rejected as spam",
            "spam detected",
            "spam score",
            "suspected spam",
            "probable spam",
        ],
    ),
    (
        Reason::NotCompliantRfc,
        &[
            "duplicate header",
            "addresses in from: header",
            "not rfc 5322",
            "not rfc5322",
            "rfc 5322 compliant",
            "malformed header",
            // Gmail: "Messages with multiple addresses in From: header are not accepted."
            "messages with multiple addresses",
        ],
    ),
    (
        Reason::AuthFailure,
        &[
            "dmarc",
            "spf record",
            "spf check",
            "bad spf",
            "spf fail",
            "dkim signature failed",
            "unauthenticated email",
            "sender policy framework",
        ],
    ),
    (
        Reason::HostUnknown,
        // cPanel's wording for a domain with no usable DNS; it goes on to
        // mention block lists as another possibility.
        &["the account or domain may not exist"],
    ),
    (
        Reason::RequirePtr,
        &[
            "ptr record",
            "ptr resource record",
            "reverse dns",
            "rdns",
            "ip name lookup failed",
            "no ptr",
            "reverse lookup",
            // Postfix's reject_unknown_client_hostname and
            // reject_unknown_reverse_client_hostname.
            "cannot find your hostname",
            "cannot find your reverse hostname",
            "cannot resolve your address",
        ],
    ),
    (
        Reason::PolicyViolation,
        &[
            "policy violation",
            "policy reasons",
            "protocol violation",
            "content presents a potential",
            "header error",
            "denied by policy",
            "local policy",
            "organization policy",
            "organizational settings",
            "members-only list",
            "closed mailing list",
            "illegal attachment",
            "security policies",
        ],
    ),
    (
        Reason::BadReputation,
        &["reputation", "unexpected volume or user complaints"],
    ),
    (
        Reason::TooManyConn,
        &[
            "too many connections",
            "connection rate limit",
            "frequency limited",
            "too many simultaneous",
            "too many concurrent",
            "too many open connections",
            "too many smtp sessions",
            "too many sessions",
            "concurrent connections",
            "connection limit",
            "maximum number of connections",
            // Sending limits of the receiving service (Amazon SES's
            // "Throttling failure: Maximum sending rate exceeded"), which
            // would otherwise read as a full mailbox's "quota exceeded".
            "throttling failure",
            "message quota exceeded",
            "sending quota",
            "daily quota",
            "hourly quota",
            "maximum sending rate",
            "emails per hour",
            "too many recipients",
            "too many errors from your ip",
            // Spectrum (Charter): its codes 1310-1340 are connection and rate
            // limits, whatever the reply's text says ("sender rejected").
            "aup#in-1310",
            "aup#in-1320",
            "aup#in-1330",
            "aup#in-1340",
        ],
    ),
    (
        Reason::Speeding,
        &[
            "receiving mail at a rate",
            "rate limited",
            "sending rate",
            "too many messages in a",
        ],
    ),
    (
        Reason::NoRelaying,
        &[
            "relay access denied",
            // Amazon SES relays only for verified sender identities.
            "email address is not verified",
            "no relaying",
            "relaying denied",
            "relay denied",
            "relay not permitted",
            "relaying not allowed",
            "not configured to relay",
            "unable to relay",
            "we do not relay",
        ],
    ),
    (
        Reason::Suspend,
        &[
            "disabled",
            "discontinued",
            "account suspended",
            "account has been suspended",
            "account is suspended",
            "mailbox suspended",
            "frozen",
            "temporary locked",
            "temporarily locked",
            "account is blocked",
            "account is inactive",
            "inactive account",
            // Not "suspended" alone: Postfix says "delivery temporarily
            // suspended" of a host it cannot reach.
            "is suspended",
            "been suspended",
            "user suspended",
            "currently suspended",
            "mailbox disabled",
            "temporarily inactive",
            "user is terminated",
            "archived recipient",
            "deactivated",
            "account expired",
            "account has expired",
            "account locked",
            "mailbox locked",
        ],
    ),
    (
        Reason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "mailfolder is full",
            "over quota",
            "overquota",
            "quota exceeded",
            "disk quota",
            "storage quota",
            "mailbox exceeds",
            "exceeds allowed size",
            "mailbox size limit",
            "insufficient storage",
            "exceeded storage",
        ],
    ),
    (
        Reason::Rejected,
        &[
            "sender address rejected",
            "sender rejected",
            "sender was rejected",
            "domain of sender address",
            "sender domain",
            "sending to/from an address",
            "permission to post",
            "not allowed to post",
            // The envelope sender's own checks: verification callouts,
            // a null or unroutable return path.
            "invalid sender",
            "sender verify failed",
            "sender verification",
            "unroutable sender",
            "null sender",
            "empty envelope sender",
            "unknown sender",
            "sender unknown",
            "sender denied",
            "sender not allowed",
            "sender is not allowed",
            // Gmail refusing a From address set up with "Send mail as".
            "'send mail as'",
        ],
    ),
    (
        Reason::Blocked,
        &[
            "blacklist",
            "blocklist",
            "block list",
            "dnsbl",
            "spamhaus",
            "spamcop",
            "blocked using",
            "banned sending ip",
            "client host blocked",
            "blocked for abuse",
            "bloquee",
            "smtp server of your isp",
            "weren't sent",
            "open relay",
            "invalid ip for sending",
            "relay quota",
            "refused to talk to me",
            "service refuse",
            "after initial connection",
            "blocked - see",
            // Postfix's smtpd restrictions on the client and its HELO name
            // refuse the sending host, whatever the rest of the reply says.
            "client host rejected",
            "helo command rejected",
            "sender ip address",
            "your ip address",
            "from your ip",
            "dynamic ip",
            // qmail: the server refused the sending host's HELO name.
            "my name was rejected",
        ],
    ),
    (
        Reason::SecurityError,
        &[
            "authentication required",
            "authrequired",
            "auth required",
            "tls required",
            "must issue a starttls",
            "encryption required",
            "requires tls",
            "tls is required",
            "starttls",
            "certificate",
            "authentication failure",
            "authentication credentials invalid",
            "unauthenticated senders",
            "insecure mail relay",
        ],
    ),
    (
        Reason::HasMoved,
        &[
            "no longer on server",
            "has moved",
            "address has changed",
            // RFC 5321 551: the user is not local, try the address given.
            "not our user",
            "user not local",
        ],
    ),
    (
        Reason::NotAccept,
        &[
            "null mx",
            "does not accept mail",
            "doesn't receive email",
            "does not receive email",
            "not accepting mail",
            "does not accept e-mail",
            "does not accept email",
            "no mx record",
            "no smtp service",
            "couldn't find a mail exchanger",
        ],
    ),
    (
        Reason::NetworkError,
        &[
            "no route to host",
            "name lookup failure",
            "lost connection",
            "hop count exceeded",
            "routing loop",
            "mail loop",
            "dns query failed",
            "name server reply",
            "network is unreachable",
            "host is unreachable",
            "too many hops",
            "message looping",
            "forwarding loop",
        ],
    ),
    (
        Reason::ContentError,
        &[
            "8-bit data",
            "8bit data",
            "invalid mime",
            "content error",
            "media error",
        ],
    ),
    (
        Reason::SyntaxError,
        &[
            "syntax error",
            "command parameter not implemented",
            "command not recognized",
            "command unrecognized",
            "unrecognized command",
            "invalid command",
            "bad sequence of commands",
        ],
    ),
    (Reason::MailerError, &["pipe to |", "mailer error"]),
];

/// Phrases that a specific status overrides (an unknown *sender* domain is
/// "no such domain" under 5.1.7; "message too large" under 5.2.3 is the
/// recipient's own size limit), in the same order of precedence.
const SUGGESTIVE: &[(Reason, &[&str])] = &[
    (
        Reason::Rejected,
        &[
            // Google Groups signs its refusals of a post, in the sender's
            // language; what the group refuses is the sender.
            "google groups",
        ],
    ),
    (
        Reason::Filtered,
        &[
            // au (KDDI) and others answer a domain-filter rejection after DATA
            // with the address left out: "550 : User unknown".
            " : user unknown",
            "rejected by the domain filter",
            // EZweb's wording for its recipients' domain filters.
            "each of the following recipients was rejected by a remote mail server",
            "user not exist",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "user unknown",
            "unknown user",
            "unknown or illegal user",
            "no such user",
            "no such mailbox",
            "no such recipient",
            "unknown recipient",
            "recipient unknown",
            "recipient not found",
            "recipientnotfound",
            "recipnotfound",
            "user not found",
            "mailbox not found",
            "mailbox unavailable",
            "mailbox does not exist",
            "address does not exist",
            "account does not exist",
            "invalid recipient",
            "invalid mailbox",
            "is not a valid mailbox",
            "recipient name is not recognized",
            "address wasn't found",
            "address wasn\u{2019}t found",
            "couldn't be found",
            "doesn't have a",
            "not listed in",
            // Microsoft's directory check refuses unknown addresses this way.
            "recipient address rejected: access denied",
            "recipient address rejected.",
            "user does not exist",
            "account that you tried to reach does not exist",
            "check if address is correct",
            "adresse destinataire invalide",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "host unknown",
            "unknown host",
            "host not found",
            "domain not found",
            "domain name not found",
            "no such domain",
            "domain is not reachable",
            "unrouteable address",
            "unroutable address",
            "nxdomain",
            // A user, mailbox or account that "does not exist" is matched
            // above; what is left is a host or a domain.
            "does not exist",
        ],
    ),
    (
        Reason::MesgTooBig,
        &[
            "message too large",
            "message too big",
            "message size exceeds",
            "message is too large",
            "too much data",
            "mail size limit exceeded",
        ],
    ),
    (
        Reason::ExceedLimit,
        &["exceeds limit", "size limit", "exceeds the limit"],
    ),
    (
        Reason::SpamDetected,
        // Any other mention of spam: a block list naming spam ("Spamhaus")
        // or a decisive cause outranks it, a 5.7.1 or 5.6.x status does not.
        &["spam"],
    ),
    (
        Reason::Expired,
        &[
            "message expired",
            "retry timeout exceeded",
            "will be retried",
            "could not deliver for the last",
            "still undelivered after",
            "did not accept our requests to connect",
            "timed out",
            "too long in queue",
            "in the queue too long",
            "giving up on",
            "delivery expired",
            "server did not respond",
            "message timed out",
            "host not reachable",
        ],
    ),
    (
        Reason::SystemError,
        &[
            "service currently unavailable",
            "transaction failed",
            "system error",
            "internal error",
            "local error",
            "configuration error",
            "config error",
            "interrupted system call",
            "queue file write error",
            "temporary local problem",
            "timeout waiting for input",
            "could not load",
            "multiple retries",
        ],
    ),
    // The weakest words, after every phrase above (so "host not found" stays
    // a host, "relay quota" a block): what a reply says when it names its
    // cause in a word or two.
    (
        Reason::UserUnknown,
        &[
            "not found",
            "not recognized",
            "illegal user",
            "invalid address",
            "no such",
        ],
    ),
    (Reason::MailboxFull, &["quota", "storage space"]),
    (
        Reason::Expired,
        &[
            "retry time",
            "retries",
            "been retried",
            "undelivered after",
            "could not deliver for",
        ],
    ),
    (Reason::Blocked, &["blocked"]),
    // A mailing list or group that does not take posts from this sender.
    // Not "to post" alone: reports ask to "send mail to postmaster".
    (
        Reason::Rejected,
        &["to post to", "post messages", "posting"],
    ),
];

/// One automaton over every phrase of both tables, and per pattern its
/// rank: the index of its list, `DECISIVE` first.
struct Table {
    phrases: Phrases,
    rank: Vec<usize>,
    reasons: Vec<Reason>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut pats = Vec::new();
    let mut rank = Vec::new();
    let mut reasons = Vec::new();
    for (i, (reason, list)) in DECISIVE.iter().chain(SUGGESTIVE).enumerate() {
        reasons.push(*reason);
        for p in *list {
            pats.push(*p);
            rank.push(i);
        }
    }
    Table {
        phrases: Phrases::new(&pats),
        rank,
        reasons,
    }
});

/// The best-ranked reason any phrase of `text` names, and whether it came
/// from `DECISIVE`.
fn by_phrase(text: &str) -> Option<(Reason, bool)> {
    let t = &*TABLE;
    let best = t
        .phrases
        .find_overlapping(text)
        .map(|m| t.rank[m.pattern])
        .min()?;
    Some((t.reasons[best], best < DECISIVE.len()))
}

/// Words that a provider's own servers use in a sense of their own, told by
/// the receiving host (a DSN's Remote-MTA) as Sisimai tells its per-provider
/// tables (`rhost/for-*.go`) apart, and consulted before everything else as
/// Sisimai consults those before its generic lists. Each entry: the host
/// names' common suffix, then (phrase, reason).
const PROVIDERS: &[(&str, &[(&str, Reason)])] = &[(
    // Yahoo's TSS04 deferral: its own documentation says it is given for
    // senders without SPF, DKIM or DMARC as much as for a poor reputation;
    // Sisimai's table for Yahoo (rhost/for-yahooinc.go) files it as
    // `rejected`. From other hosts, the same words stay `badreputation`.
    ".yahoodns.net",
    &[(
        "deferred due to unexpected volume or user complaints",
        Reason::Rejected,
    )],
)];

/// The reason a provider's own table gives `text` from `remote_mta`.
fn by_provider(remote_mta: Option<&str>, text: &str) -> Option<Reason> {
    let host = remote_mta?.trim_end_matches('.');
    let (_, words) = PROVIDERS.iter().find(|(suffix, _)| {
        host.len() >= suffix.len()
            && host.as_bytes()[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    })?;
    words
        .iter()
        .find(|(phrase, _)| crate::plaintext::contains_ci(text, phrase))
        .map(|(_, reason)| *reason)
}

/// A status split into class, subject and detail (`5.1.1` -> 5, 1, 1).
fn parts(status: &str) -> Option<(u8, u16, u16)> {
    let mut it = status.split('.');
    let class = it.next()?.parse().ok()?;
    let subject = it.next()?.parse().ok()?;
    let detail = it.next()?.parse().ok()?;
    Some((class, subject, detail))
}

/// What an enhanced status code says when its detail names one cause,
/// whatever the text adds. Each entry is a code of RFC 3463 or of the IANA
/// registry "SMTP Enhanced Status Codes" (which adds RFC 7293, 7372, 7505
/// and 8617), or a large provider's own, filed under the reason Sisimai's
/// documentation gives it.
fn by_specific_status(class: u8, subject: u16, detail: u16) -> Option<Reason> {
    Some(match (class, subject, detail) {
        // X.1.1 Bad destination mailbox address (RFC 3463).
        (5, 1, 1) => Reason::UserUnknown,
        // X.1.2 Bad destination system address (RFC 3463).
        (5, 1, 2) => Reason::HostUnknown,
        // X.1.6 Destination mailbox has moved, no forwarding address (RFC 3463).
        (_, 1, 6) => Reason::HasMoved,
        // X.1.7 Bad sender's mailbox address syntax, X.1.8 bad sender's
        // system address (RFC 3463): the envelope sender is refused.
        (_, 1, 7 | 8) => Reason::Rejected,
        // X.2.2 Mailbox full (RFC 3463).
        (_, 2, 2) => Reason::MailboxFull,
        // X.2.3 Message length exceeds administrative limit (RFC 3463).
        (_, 2, 3) => Reason::ExceedLimit,
        // X.2.4 Mailing list expansion problem (RFC 3463): Sisimai's `filtered`.
        (_, 2, 4) => Reason::Filtered,
        // X.3.2 System not accepting network messages (RFC 3463).
        (_, 3, 2) => Reason::NotAccept,
        // X.3.4 Message too big for system (RFC 3463).
        (_, 3, 4) => Reason::MesgTooBig,
        // X.4.7 Delivery time expired (RFC 3463).
        (_, 4, 7) => Reason::Expired,
        // X.7.13 User account disabled (RFC 3463 via the IANA registry).
        (_, 7, 13) => Reason::Suspend,
        // X.7.17 Mailbox owner has changed, X.7.18 domain owner has changed (RFC 7293).
        (_, 7, 17 | 18) => Reason::HasMoved,
        // X.7.20-22 no (acceptable, author-matched) DKIM signature, X.7.23
        // SPF validation failed, X.7.24 SPF validation error, X.7.26 multiple
        // authentication checks failed (RFC 7372); X.7.29 ARC validation
        // failure (RFC 8617); 5.7.509 and 5.7.510, Microsoft's DMARC rejections.
        (_, 7, 20..=24 | 26 | 29 | 509 | 510) => Reason::AuthFailure,
        // X.7.25 Reverse DNS validation failed (RFC 7372).
        (_, 7, 25) => Reason::RequirePtr,
        // X.7.27 Sender address has null MX (RFC 7505): Sisimai's `notaccept`.
        (_, 7, 27) => Reason::NotAccept,
        // X.7.28 Mail flood detected (IANA registry).
        (_, 7, 28) => Reason::SpamDetected,
        // Exchange Online's 4.4.312 and 5.4.312, "DNS query failed" (its
        // reports say so beside the code: "550 5.4.312 Message expired, DNS
        // query failed"): the lookup on the way, not the time the message waited.
        (_, 4, 312) => Reason::NetworkError,
        // Microsoft's 5.7.606-608: the sending IP is on its block list.
        (_, 7, 606..=608) => Reason::Blocked,
        // Microsoft's 4.7.650-652: the sending IP's reputation.
        (_, 7, 650..=652) => Reason::BadReputation,
        _ => return None,
    })
}

/// What the status alone suggests when neither its detail nor any words
/// named a cause: the rest of the IANA registry's codes and RFC 3463's
/// subjects, filed as Sisimai's documentation files them. `X.Y.0` is
/// "other or undefined" in most subjects, so it mostly says nothing and the
/// recipient stays `onhold`.
fn by_status_subject(class: u8, subject: u16, detail: u16) -> Option<Reason> {
    Some(match (class, subject, detail) {
        // X.1.10 Recipient address has null MX (RFC 7505). Not specific:
        // Microsoft answers unknown recipients with 5.1.10 too, in words.
        (5, 1, 10) => Reason::NotAccept,
        // X.1.4 Destination mailbox address ambiguous (RFC 3463): Sisimai's
        // `filtered`.
        (5, 1, 4) => Reason::Filtered,
        // X.1.9 Message relayed to non-compliant mailer (RFC 3886): the
        // receiving system, not the address.
        (_, 1, 9) => Reason::SystemError,
        // X.1.x: the address; a permanent one names no mailbox that takes mail.
        (5, 1, _) => Reason::UserUnknown,
        // 4.2.1 Mailbox disabled for now: Sisimai's `blocked`; 5.2.0 and
        // 5.2.1 (other mailbox status, mailbox disabled): its `filtered`, the
        // mailbox refusing this message.
        (4, 2, 1) => Reason::Blocked,
        (5, 2, 0 | 1) => Reason::Filtered,
        // X.3.x mail system status: 4.3.0 says only "try again".
        (5, 3, _) | (4, 3, 1..) => Reason::SystemError,
        // X.4.4 Unable to route: permanently, the domain has no usable DNS.
        (5, 4, 4) => Reason::HostUnknown,
        // X.4.3 Directory server failure.
        (_, 4, 3) => Reason::SystemError,
        // X.4.0-X.4.1: no answer, until the MTA gave up.
        (4, 4, 0 | 1) => Reason::Expired,
        // X.4.5 Mail system congestion.
        (_, 4, 5) => Reason::TooManyConn,
        // X.4.2 bad connection, X.4.6 routing loop, X.4.8 retry on IPv4 and
        // the rest of the network and routing subject.
        (_, 4, _) => Reason::NetworkError,
        // 5.5.3 Too many recipients: Sisimai's `toomanyconn`.
        (5, 5, 3) => Reason::TooManyConn,
        // X.5.1 invalid command, X.5.2 syntax error, X.5.6 authentication
        // exchange line too long (RFC 4954).
        (_, 5, 1 | 2 | 6) => Reason::SyntaxError,
        // X.5.4 invalid arguments, X.5.5 wrong protocol version, and the rest.
        (_, 5, _) => Reason::SystemError,
        // X.6.x message content or media status.
        (_, 6, _) => Reason::ContentError,
        // 4.7.1 and 4.7.2, delivery not authorized for now: Sisimai's
        // `blocked` (greylisting and rate limits of the sending host).
        (4, 7, 1 | 2) => Reason::Blocked,
        // X.7.16 Message is too big for the specified priority (RFC 6710).
        (_, 7, 16) => Reason::MesgTooBig,
        // X.7.x security or policy status.
        (_, 7, _) => Reason::SecurityError,
        _ => return None,
    })
}

/// What a bare SMTP reply code says (RFC 5321 §4.2).
fn by_reply(code: u16) -> Option<Reason> {
    Some(match code {
        // 500-504: syntax error, command not recognised, not implemented,
        // bad sequence, parameter not implemented.
        500..=504 => Reason::SyntaxError,
        // 551 User not local; please try <forward-path>.
        551 => Reason::HasMoved,
        // 552 Requested mail action aborted: exceeded storage allocation.
        552 => Reason::MailboxFull,
        // 521 and 556: the host or domain does not accept mail (RFC 7504).
        521 | 556 => Reason::NotAccept,
        // 525: the user's account is disabled (Sisimai reads it as `suspend`).
        525 => Reason::Suspend,
        _ => return None,
    })
}

/// What a refusal means by the command it answered, when nothing else
/// said: the greeting and HELO/EHLO come before any address, so their
/// refusal is of the sending host; MAIL FROM names only the sender.
fn by_command(command: Command) -> Option<Reason> {
    match command {
        Command::Connect | Command::Helo => Some(Reason::Blocked),
        Command::MailFrom => Some(Reason::Rejected),
        Command::RcptTo | Command::Data => None,
    }
}

/// The reason for one failed recipient, from its status (`5.1.1`), the SMTP
/// reply code and the diagnostic text. Never fails: `onhold` when the
/// report says something but not why, `undefined` when it says nothing.
pub fn decide(status: Option<&str>, reply: Option<u16>, diagnostic: &str) -> Reason {
    decide_with_report(status, reply, diagnostic, false, None, || None, || None)
}

/// [`decide`] for a failure known only by the remote server's reply, as e-mail
/// services pass it on: `status` and `reply` where the service gives them,
/// else read from the text (whose own status is preferred to `status` when
/// both agree on the class, as for a DSN's Diagnostic-Code). Returns the
/// reason and the status it went by.
pub fn decide_reply(
    status: Option<&str>,
    reply: Option<u16>,
    diagnostic: &str,
) -> (Reason, Option<String>) {
    let status = crate::status::dsn_status(status, Some(diagnostic));
    let reply = reply.or_else(|| crate::status::find_reply_code(diagnostic));
    (decide(status.as_deref(), reply, diagnostic), status)
}

/// [`decide`], with the report's own text (`report`: `None` unless the
/// report is about this recipient alone) standing in for a diagnostic that
/// names no cause or no SMTP command: some MTAs explain the failure in a
/// paragraph of its own, away from the recipient's address. Read only when
/// needed. `delayed`: the report says delivery is still being tried.
/// `command_elsewhere`: the SMTP command that the report's paragraph about
/// this recipient names, asked for when the diagnostic names none.
pub(crate) fn decide_with_report<'a>(
    status: Option<&str>,
    reply: Option<u16>,
    diagnostic: &str,
    delayed: bool,
    remote_mta: Option<&str>,
    report: impl Fn() -> Option<&'a str>,
    command_elsewhere: impl Fn() -> Option<Command>,
) -> Reason {
    let joined = joined_reply(diagnostic);
    let diagnostic = joined.as_ref();
    if let Some(r) = by_provider(remote_mta, diagnostic) {
        return r;
    }
    let phrase = as_is_then_joined(diagnostic, by_phrase);
    // The report's own words stand in for a diagnostic that names nothing.
    let phrase = match phrase {
        Some(p) => Some(p),
        None => report().and_then(by_phrase),
    };
    if let Some((reason, true)) = phrase {
        return reason;
    }
    let parts = status.and_then(parts);
    if let Some(r) = parts.and_then(|(c, s, d)| by_specific_status(c, s, d)) {
        return r;
    }
    // Looked for once, and only when a rule below asks: it may mean finding
    // this recipient's paragraph in the report.
    let found = std::cell::OnceCell::new();
    let command =
        || *found.get_or_init(|| command::failed_command(diagnostic).or_else(&command_elsewhere));
    if let Some((reason, _)) = phrase {
        return adjust(reason, parts, command);
    }
    // The command outranks what the status class alone suggests: a 5.7.1
    // answered to MAIL FROM refuses the sender, not a security requirement.
    if let Some(r) = command().and_then(by_command) {
        return r;
    }
    if let Some(r) = parts.and_then(|(c, s, d)| by_status_subject(c, s, d)) {
        return r;
    }
    if let Some(r) = reply.and_then(by_reply) {
        return r;
    }
    if delayed {
        // Still being retried, for no reason given: Sisimai's `expired`.
        Reason::Expired
    } else if says_something(diagnostic) {
        Reason::OnHold
    } else {
        // A status or a reply code with no words at all: Sisimai's
        // `undefined` (its `onhold` needs a diagnostic to have been given).
        Reason::Undefined
    }
}

/// `find` on `text` as it is, then, when that finds nothing in a text of
/// several lines, on its lines joined (`phrases::one_line`): a phrase an MTA
/// wrapped across two lines ("Recipient address\n    rejected") is found
/// without copying every paragraph that names its cause on one line.
fn as_is_then_joined<T>(text: &str, find: impl Fn(&str) -> Option<T>) -> Option<T> {
    find(text).or_else(|| match crate::phrases::one_line(text) {
        std::borrow::Cow::Owned(joined) => find(&joined),
        std::borrow::Cow::Borrowed(_) => None,
    })
}

/// The diagnostic with the codes that open each line of a multi-line SMTP
/// reply (RFC 5321 §4.2.1: `550-5.7.1 Messages with multiple` then `550 5.7.1
/// addresses in From: header ...`) taken out, so that a phrase broken across
/// two lines of the reply is found. Most replies are one line: borrowed as is.
fn joined_reply(diagnostic: &str) -> std::borrow::Cow<'_, str> {
    static MULTILINE: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(?-u)\b[245][0-9]{2}-").expect("static regex"));
    static CONTINUATION: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?-u)\s+[245][0-9]{2}(?:-|\s+)(?:[245]\.[0-9]{1,3}\.[0-9]{1,3}\s+)?")
            .expect("static regex")
    });
    if !diagnostic.contains('-') || !MULTILINE.is_match(diagnostic) {
        return std::borrow::Cow::Borrowed(diagnostic);
    }
    CONTINUATION.replace_all(diagnostic, " ")
}

/// Whether a diagnostic holds any word besides addresses (some reports
/// list the failed address and nothing else).
fn says_something(diagnostic: &str) -> bool {
    diagnostic
        .split(|c: char| c.is_ascii_whitespace() || c == '<' || c == '>')
        .filter(|w| !w.contains('@'))
        .any(|w| w.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// What a weaker phrase means in the light of the status and of the SMTP
/// command that was refused.
fn adjust(
    reason: Reason,
    parts: Option<(u8, u16, u16)>,
    command: impl Fn() -> Option<Command>,
) -> Reason {
    let class = parts.map(|(c, _, _)| c);
    let subject = parts.map(|(_, s, _)| s);
    match reason {
        // A host that cannot be found "for now" is a DNS failure on the way,
        // not a domain that does not exist.
        Reason::HostUnknown if class == Some(4) => Reason::NetworkError,
        // "Does not exist" answered to MAIL FROM is about the sender's domain.
        Reason::HostUnknown if command() == Some(Command::MailFrom) => Reason::Rejected,
        // Weaker words about the message or the mailbox mean little when the
        // server refused the sending host before any address was given.
        Reason::Expired | Reason::SystemError | Reason::SpamDetected | Reason::MailboxFull
            if matches!(command(), Some(Command::Connect | Command::Helo)) =>
        {
            Reason::Blocked
        }
        // An unknown user is a mailbox that does not exist only when RCPT TO
        // was refused: the same words after DATA come from a filter that read
        // the message (Sisimai's definition of `filtered`); before RCPT TO
        // they refuse the sender or the sending host.
        Reason::UserUnknown => match command() {
            Some(Command::RcptTo) => Reason::UserUnknown,
            Some(Command::Data) => Reason::Filtered,
            Some(Command::MailFrom) => Reason::Rejected,
            Some(Command::Connect | Command::Helo) => Reason::Blocked,
            // No command named: the status decides, as Sisimai files it
            // (5.2.x mailbox and 5.7.x policy statuses are a filter's). Taking
            // the words alone as a filter's, as Sisimai does when no MTA
            // module named the command, was tried: 93.5% -> 87.4% on half A.
            None if matches!(subject, Some(2 | 7)) => Reason::Filtered,
            None => Reason::UserUnknown,
        },
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_table() {
        // (status, reply code, diagnostic, reason): at least one row per
        // reason `decide` gives, each able to fail on its own.
        #[rustfmt::skip]
        let rows: &[(Option<&str>, Option<u16>, &str, Reason)] = &[
            (Some("5.1.1"), Some(550), "550 5.1.1 <a@b.example>... User unknown", Reason::UserUnknown),
            (None, None, "550 Requested action not taken: mailbox unavailable", Reason::UserUnknown),
            (Some("5.2.2"), Some(552), "552 5.2.2 Over quota", Reason::MailboxFull),
            (Some("5.0.0"), None, "user is over quota", Reason::MailboxFull),
            (Some("5.1.1"), Some(552), "552 mailbox is over quota temporarily (#5.1.1)", Reason::MailboxFull),
            (Some("5.1.2"), None, "", Reason::HostUnknown),
            (None, None, "Host or domain name not found", Reason::HostUnknown),
            (Some("4.4.3"), None, "Domain name not found: example.invalid", Reason::NetworkError),
            (Some("5.0.0"), Some(550), "550 : User unknown", Reason::Filtered),
            (Some("5.7.1"), Some(550), "550 5.7.1 550 User Unknown: a@b.example", Reason::Filtered),
            (None, None, "SMTP error after end of data: 550 Unknown user a@b.example", Reason::Filtered),
            (Some("5.7.1"), Some(554), "554 5.7.1 Service unavailable; client blocked using dnsbl.example", Reason::Blocked),
            (Some("5.0.0"), Some(550), "SMTP error from remote mail server after initial connection: 550 Access denied", Reason::Blocked),
            (Some("5.7.1"), Some(550), "550 5.7.1 Message content rejected, UBE, id=1", Reason::SpamDetected),
            (Some("4.4.7"), None, "", Reason::Expired),
            (None, None, "delivery retry timeout exceeded", Reason::Expired),
            (Some("5.2.1"), Some(550), "The email account that you tried to reach is disabled.", Reason::Suspend),
            (Some("5.0.0"), Some(550), "550 Mailbox is frozen.", Reason::Suspend),
            (Some("5.1.8"), Some(501), "501 5.1.8 Sender address rejected", Reason::Rejected),
            (Some("5.1.0"), Some(553), "SMTP error after MAIL FROM:<s@x.example>: 553 5.1.0 x.example does not exist", Reason::Rejected),
            (Some("5.7.0"), Some(550), "550 5.7.0 Local Policy Violation", Reason::PolicyViolation),
            (Some("5.7.26"), Some(550), "550-5.7.26 Unauthenticated email is not accepted", Reason::AuthFailure),
            (Some("5.7.1"), Some(554), "554 5.7.1 rejected due to example.org's DMARC policy", Reason::AuthFailure),
            (Some("5.7.25"), Some(550), "", Reason::RequirePtr),
            (Some("5.7.1"), Some(554), "554 5.7.1 Reverse DNS lookup for host 192.0.2.1 failed", Reason::RequirePtr),
            (Some("5.7.1"), Some(554), "554 5.7.1 <a@b.example>: Relay access denied", Reason::NoRelaying),
            (Some("4.3.2"), Some(452), "452 4.3.2 Connection rate limit exceeded.", Reason::TooManyConn),
            (Some("5.1.0"), Some(550), "550 5.1.0 <a@b.example> sender rejected. AUP#In-1310", Reason::TooManyConn),
            (Some("5.2.1"), Some(550), "receiving mail at a rate that prevents additional messages", Reason::Speeding),
            (Some("5.3.4"), Some(552), "552 5.3.4 Message too large", Reason::MesgTooBig),
            (Some("5.2.3"), Some(550), "550 5.2.3 message too large for this recipient", Reason::ExceedLimit),
            (Some("5.6.9"), Some(550), "550 5.6.9 improper use of 8-bit data in message header", Reason::ContentError),
            (Some("5.6.0"), None, "", Reason::ContentError),
            (Some("5.7.1"), Some(550), "550 5.7.1 RESOLVER.RST.AuthRequired; authentication required", Reason::SecurityError),
            (Some("5.0.0"), Some(550), "550 Virus Detected; Content Rejected", Reason::VirusDetected),
            (Some("4.7.650"), Some(451), "451 4.7.650 The mail server has been temporarily rate limited due to IP reputation", Reason::BadReputation),
            (Some("5.0.0"), Some(554), "554 Service currently unavailable", Reason::SystemError),
            (Some("5.3.5"), None, "", Reason::SystemError),
            (Some("4.3.0"), Some(451), "451 4.3.0 please try again later", Reason::OnHold),
            (Some("4.4.1"), None, "connect to mx.example[192.0.2.2]:25: No route to host", Reason::NetworkError),
            (Some("5.3.2"), None, "", Reason::NotAccept),
            (None, None, "No mx record found for domain=example.org", Reason::NotAccept),
            (Some("5.1.6"), Some(550), "550 5.1.6 recipient no longer on server", Reason::HasMoved),
            (None, Some(551), "551 not our user", Reason::HasMoved),
            (Some("5.0.0"), Some(504), "504 Command parameter not implemented", Reason::SyntaxError),
            (None, Some(501), "501 bad address", Reason::SyntaxError),
            (None, None, "pipe to |/usr/local/bin/filter generated by a@b.example", Reason::MailerError),
            (Some("5.0.0"), Some(554), "554 Transaction failed: Duplicate header 'DKIM-Signature'.", Reason::NotCompliantRfc),
            (Some("5.0.0"), Some(550), "550 nothing useful here", Reason::OnHold),
            (Some("4.0.0"), None, "", Reason::Undefined),
            (None, Some(550), "* a@b.example", Reason::Undefined),
            (None, None, "", Reason::Undefined),
            (None, None, "  \n", Reason::Undefined),
            // The refused command decides what "unknown user" means.
            (Some("5.7.1"), Some(554), "SMTP error from remote mail server after RCPT TO:<a@b.example>: 554 5.7.1 <a@b.example>: Recipient address rejected: Access denied", Reason::UserUnknown),
            (None, Some(550), "host mx.example said: 550 Unknown user (in reply to end of DATA command)", Reason::Filtered),
            (Some("5.0.0"), Some(550), "SMTP error from remote mail server after EHLO mx.example: 550 Rejected", Reason::Blocked),
            (Some("5.7.1"), Some(550), "host mx.example said: 550 5.7.1 Access denied (in reply to MAIL FROM command)", Reason::Rejected),
            (Some("5.2.1"), Some(550), "550 5.2.1 <a@b.example>... User Unknown", Reason::Filtered),
            // Status codes of the IANA registry, as Sisimai files them.
            (Some("4.7.1"), Some(450), "450 4.7.1 try again later", Reason::Blocked),
            (Some("5.5.4"), None, "", Reason::SystemError),
            (Some("5.5.3"), None, "", Reason::TooManyConn),
            (Some("5.7.28"), None, "", Reason::SpamDetected),
            (Some("5.7.17"), None, "", Reason::HasMoved),
            (Some("5.1.10"), None, "", Reason::NotAccept),
            (Some("5.4.312"), Some(550), "550 5.4.312 Message expired", Reason::NetworkError),
            (Some("5.1.4"), None, "", Reason::Filtered),
            (Some("4.1.9"), None, "", Reason::SystemError),
            (Some("5.7.16"), None, "", Reason::MesgTooBig),
            (Some("5.1.10"), Some(550), "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", Reason::UserUnknown),
            // Sender-side words that outrank a generic status.
            (Some("5.0.0"), Some(550), "550 5.0.0 Client host rejected: cannot find your hostname", Reason::RequirePtr),
            (Some("5.7.1"), Some(554), "554 5.7.1 Client host rejected: Access denied", Reason::Blocked),
            (Some("5.7.1"), Some(550), "550 5.7.1 Message rejected: identified as spam", Reason::SpamDetected),
            (Some("5.6.0"), Some(554), "554 5.6.0 rejected by the anti-spam filter", Reason::SpamDetected),
            (Some("5.0.0"), Some(550), "550 This mailbox is suspended", Reason::Suspend),
            (Some("4.4.1"), None, "delivery temporarily suspended: connect to mx.example[192.0.2.1]:25: Connection timed out", Reason::Expired),
            (Some("4.0.0"), Some(421), "421 Too many SMTP sessions for this host", Reason::TooManyConn),
            (Some("5.0.0"), Some(553), "553 sender verify failed", Reason::Rejected),
            (Some("5.0.0"), Some(501), "Connected to 192.0.2.1 but my name was rejected. Remote host said: 501 5.0.0 Invalid domain name. I'm not going to try again; this message has been in the queue too long.", Reason::Blocked),
            (Some("5.0.0"), Some(550), "550 Requested action not taken: address not found", Reason::UserUnknown),
            (Some("4.0.0"), Some(452), "452 storage quota reached", Reason::MailboxFull),
            (None, None, "The group may not be open to posting.", Reason::Rejected),
            (None, Some(550), "550 failed. Please send mail to postmaster.", Reason::OnHold),
            (Some("4.0.0"), Some(451), "451 Daily sending quota exceeded", Reason::TooManyConn),
        ];
        let wrong: Vec<String> = rows
            .iter()
            .filter_map(|(status, reply, text, want)| {
                let got = decide(*status, *reply, text);
                (got != *want)
                    .then(|| format!("{status:?} {reply:?} {text:?}: got {got}, want {want}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn the_report_is_read_only_when_the_recipient_says_nothing() {
        let report = "Recipient address rejected: No relaying.";
        assert_eq!(
            decide_with_report(
                Some("5.7.0"),
                Some(550),
                "error delivering your mail",
                false,
                None,
                || Some(report),
                || None
            ),
            Reason::NoRelaying
        );
        // A specific status outranks the report's weaker words.
        assert_eq!(
            decide_with_report(
                Some("5.2.2"),
                None,
                "",
                false,
                None,
                || Some("User unknown"),
                || None
            ),
            Reason::MailboxFull
        );
        // So do the recipient's own words.
        assert_eq!(
            decide_with_report(
                None,
                None,
                "550 5.1.1 User unknown",
                false,
                None,
                || Some(report),
                || None
            ),
            Reason::UserUnknown
        );
        // A transcript showing the refusal came after DATA makes it a filter.
        assert_eq!(
            decide_with_report(
                None,
                Some(550),
                "550 Unknown user a@b.example",
                false,
                None,
                || None,
                || command::failed_command(">>> DATA\n<<< 550 Unknown user a@b.example")
            ),
            Reason::Filtered
        );
    }

    #[test]
    fn a_providers_own_words_go_by_its_host() {
        let tss04 = "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints";
        let from = |host| {
            decide_with_report(
                Some("4.7.0"),
                Some(421),
                tss04,
                false,
                host,
                || None,
                || None,
            )
        };
        assert_eq!(from(Some("mta6.am0.YahooDNS.net.")), Reason::Rejected);
        assert_eq!(from(Some("mx.example.net")), Reason::BadReputation);
        assert_eq!(from(None), Reason::BadReputation);
        // Yahoo's other replies go by the generic tables.
        assert_eq!(
            decide_with_report(
                Some("5.2.2"),
                Some(552),
                "552 mailbox is full",
                false,
                Some("mta5.am0.yahoodns.net"),
                || None,
                || None
            ),
            Reason::MailboxFull
        );
    }

    #[test]
    fn a_phrase_wrapped_across_lines_is_found() {
        assert_eq!(
            decide(
                None,
                Some(550),
                "host mx.example said: 550 mailbox\n    full"
            ),
            Reason::MailboxFull
        );
    }

    #[test]
    fn a_multi_line_reply_is_read_as_one() {
        assert_eq!(
            joined_reply(
                "550-5.7.1 [192.0.2.2      13] Messages with multiple 550\n    5.7.1 addresses in From: header are not accepted."
            ),
            "550-5.7.1 [192.0.2.2      13] Messages with multiple addresses in From: header are not accepted."
        );
        assert_eq!(
            decide(
                Some("5.7.1"),
                Some(550),
                "550-5.7.1 This message does not have authentication information 550-5.7.1 or fails to pass 550 5.7.1 authentication checks"
            ),
            Reason::SecurityError
        );
        let one_line = "550 5.1.1 <a@b.example>: Recipient address rejected";
        assert!(matches!(
            joined_reply(one_line),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_delayed_report_with_no_cause_is_expired() {
        assert_eq!(
            decide_with_report(Some("4.0.0"), None, "", true, None, || None, || None),
            Reason::Expired
        );
        // A cause named still decides.
        assert_eq!(
            decide_with_report(Some("4.2.2"), None, "", true, None, || None, || None),
            Reason::MailboxFull
        );
    }

    #[test]
    fn the_phrase_table_finds_what_aho_corasick_finds() {
        let phrases: Vec<&str> = DECISIVE
            .iter()
            .chain(SUGGESTIVE)
            .flat_map(|(_, list)| list.iter().copied())
            .collect();
        crate::automaton::tests::agrees_on(&phrases, &crate::automaton::tests::fixture_texts());
    }

    #[test]
    fn names_are_sisimais_and_unique() {
        for &r in Reason::ALL {
            let json = serde_json::to_value(r).unwrap();
            assert_eq!(json, r.as_str(), "{r:?}");
            assert_eq!(Reason::from_name(r.as_str()), Some(r));
            assert!(r.as_str().bytes().all(|b| b.is_ascii_lowercase()));
        }
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        assert_eq!(Reason::from_name("nosuchreason"), None);
        // The vocabulary itself (issue 13's, as users read it in Sisimai's docs) is pinned
        // once, by `bounceops_api::reasons::REASONS` and its test against `Reason::ALL`.
    }

    #[test]
    fn who_is_at_fault() {
        assert_eq!(Reason::UserUnknown.side(), Side::Recipient);
        assert_eq!(Reason::MailboxFull.side(), Side::Recipient);
        assert_eq!(Reason::Blocked.side(), Side::Sender);
        assert_eq!(Reason::AuthFailure.side(), Side::Sender);
        assert_eq!(Reason::Expired.side(), Side::Unknown);
        assert_eq!(Reason::Undefined.side(), Side::Unknown);
    }
}

//! Provider webhooks: the interface of a provider adapter (`Adapter`, and `Provider` for
//! the adapters whose checks need the network or the store), the registry of enabled
//! adapters, and their domain errors. Nothing here knows HTTP: the route, the
//! metrics and the mapping of a `Rejection` to a status code are `http::providers`'.
//!
//! A request goes through the same steps for every provider: the adapter `admit`s its head
//! (headers and query: credentials in the URL or headers are checked whole there, and the
//! presence, shape and time of signature headers), so that a request refused by its head
//! is refused before its body is read; then it `verify`s the raw request (headers and body
//! bytes, nothing built from the body that the signature does not cover yet), then `parse`s
//! it into bounce events or a handshake; the route records the events and answers 2xx only
//! once they are committed. Adding a provider is one file plus one line in `Registry::load`:
//! the file's `load` makes a `webhook::Webhook` of its authentication and its parse, or a
//! type of its own implementing `Provider` when its checks need the network or the store
//! (docs/providers.md says what else a new provider touches).
//!
//! Written once for all of them:
//! - `webhook`: the provider most adapters are, an `Authenticate` plus a parse; and the
//!   providers that sign nothing, registered from data (`token_auth`).
//! - `hmac`: HMAC-SHA256 and constant-time comparison, and the header signature schemes
//!   described as data (`HmacScheme`); `tolerance`: signed timestamps.
//! - `credentials`: Basic and token credentials in the webhook URL or headers.
//! - `secret`: reading an enabled provider's secret (`from_secret`, the one load of a
//!   provider made from one secret).
//! - `payload`: reading the JSON (objects, items, strings, recipients, times, ids);
//!   `listmonk`: listmonk's campaign and subscriber ids in headers or metadata.
//! - `reason`: why a bounce happened (`Why`, a provider's table and the server's reply);
//!   `bounce`: the `BounceEvent` of one provider event.
//! - `replay`: single-use signature tokens across replicas (Mailgun).
//!
//! Then one module per provider: how it authenticates, how it maps its events, its reason
//! tables.

pub mod bounce;
pub mod credentials;
pub mod hmac;
pub mod listmonk;
pub mod payload;
pub mod reason;
pub mod replay;
pub mod secret;
#[cfg(test)]
pub mod testing;
pub mod tolerance;
pub mod webhook;

pub mod azure;
pub mod brevo;
pub mod forwardemail;
pub mod lettermint;
pub mod mailgun;
pub mod mailjet;
pub mod postmark;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod sparkpost;

use std::collections::BTreeMap;
use std::sync::Arc;

use bounceops_api::ProvidersSpec;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
// The header type only (from the `http` crate, through axum): adapters read headers.
use axum::http::HeaderMap;

use crate::event::BounceEvent;
use crate::secrets::SecretsDir;
use crate::store::Store;

/// An adapter whose checks may wait for the network or the store (SES's certificates,
/// Mailgun's single-use tokens), or hand what they parsed to `parse`. The others are a
/// `webhook::Webhook`.
pub trait Provider: Send + Sync + 'static {
    /// What `verify` hands to `parse`: the envelope, when the signature lives inside it and
    /// had to be read to be checked (SNS); `()` otherwise.
    type Verified: Send;

    /// The path segment, the `source` of its bounces and the `provider` metric label.
    fn name(&self) -> &'static str;

    /// Checks what the request's head alone can prove, before its body is read; a failure
    /// is a 401 naming the check. `Authenticated` when that is the whole check (credentials
    /// in the URL or a header): the body is then read as any authenticated API call's.
    /// `BodyToVerify` when the signature covers the body: the body is read within the
    /// budget of unverified bodies (`http::providers`), then `verify`ed.
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        let _ = head;
        Ok(Admitted::BodyToVerify)
    }

    /// Authenticates the raw request. Runs before `parse`; a failure is a 401 whose message
    /// names the check that failed (never a secret).
    fn verify<'a>(&'a self, req: &'a Incoming, ctx: &'a Context) -> Checking<'a, Self::Verified>;

    /// Turns a verified request into what the route should do. Pure: no I/O.
    fn parse(&self, req: &Incoming, verified: Self::Verified) -> Result<Received, Rejection>;

    /// Configuration that is allowed but risky, logged once at start-up.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A provider as the registry holds it, whatever its `Verified` type: admit, verify, then
/// parse. Every `Provider` is one; so is every `webhook::Webhook`.
pub trait Adapter: Send + Sync {
    fn name(&self) -> &'static str;
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection>;
    /// Every check, `admit` included (so that no caller can skip one), then the parse.
    fn receive<'a>(&'a self, req: &'a Incoming, ctx: &'a Context) -> Checking<'a, Received>;
    fn warnings(&self) -> Vec<String>;
}

impl<P: Provider> Adapter for P {
    fn name(&self) -> &'static str {
        Provider::name(self)
    }

    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        Provider::admit(self, head)
    }

    fn receive<'a>(&'a self, req: &'a Incoming, ctx: &'a Context) -> Checking<'a, Received> {
        Box::pin(async move {
            Provider::admit(self, &req.head())?;
            let verified = self.verify(req, ctx).await?;
            self.parse(req, verified)
        })
    }

    fn warnings(&self) -> Vec<String> {
        Provider::warnings(self)
    }
}

/// The request as an adapter sees it: the raw bytes, untouched.
pub struct Incoming {
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    /// The clock for timestamp tolerances (a field, so tests and benchmarks are repeatable).
    pub now: DateTime<Utc>,
}

impl Incoming {
    pub fn head(&self) -> Head<'_> {
        Head {
            headers: &self.headers,
            query: self.query.as_deref(),
            now: self.now,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head().header(name)
    }
}

/// A request's head, all that `admit` sees: the body may not have been read yet.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl<'a> Head<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What `admit` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// The head carries the whole proof: the sender is authenticated.
    Authenticated,
    /// The signature covers the body: nothing is proven until it is read and verified.
    BodyToVerify,
}

/// What a verified request asks for.
#[derive(Debug)]
pub enum Received {
    /// Bounces to record; an empty list is acknowledged (deliveries, opens, tests).
    Events(Vec<BounceEvent>),
    /// A handshake answered with this JSON and nothing recorded (Event Grid validation).
    Reply(serde_json::Value),
    /// Confirm a subscription by GETting this URL, which the signature covered (SNS).
    Confirm(reqwest::Url),
}

/// Why a request is refused.
#[derive(Debug)]
pub enum Rejection {
    /// The named check failed (401).
    Unauthorized(&'static str),
    /// The body is not what the provider sends (400).
    Malformed(String),
    /// A handshake with the provider failed; the provider retries (502).
    Upstream(String),
    /// Something the check needs is unreachable for now (a signing certificate); the
    /// provider retries, as it does while the database is down (503).
    Retry(&'static str),
    /// The store failed (single-use tokens).
    Store(sqlx::Error),
}

impl From<sqlx::Error> for Rejection {
    fn from(e: sqlx::Error) -> Self {
        Rejection::Store(e)
    }
}

/// What adapters may use while verifying.
pub struct Context {
    pub store: Store,
    /// For SNS certificates and subscription confirmations; every call has a timeout.
    pub http: reqwest::Client,
}

/// A configuration problem: the field to fix and what is wrong with it, the one type of
/// every problem of a spec (`validate`'s too), which `config` reports.
pub type ConfigIssue = bounceops_api::Problem;

/// A provider as its `load` makes it from the spec: `None` when it is not enabled.
pub type Loaded<P> = Result<Option<P>, ConfigIssue>;

/// The answer of a check that may wait for the network or the store.
pub type Checking<'a, T> = BoxFuture<'a, Result<T, Rejection>>;

/// The enabled providers, resolved from the configuration (secrets read, keys parsed).
#[derive(Clone, Default)]
pub struct Registry(BTreeMap<&'static str, Arc<dyn Adapter>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Registry {
    /// Resolves every enabled provider; an enabled provider without its secret is an error.
    pub fn load(spec: &ProvidersSpec, secrets: &SecretsDir) -> Result<Registry, ConfigIssue> {
        let mut r = Registry::default();
        r.add(ses::load(&spec.ses)?);
        r.add(sendgrid::load(&spec.sendgrid, secrets)?);
        r.add(postmark::load(&spec.postmark, secrets)?);
        r.add(forwardemail::load(&spec.forwardemail, secrets)?);
        r.add(mailgun::load(&spec.mailgun, secrets)?);
        r.add(lettermint::load(&spec.lettermint, secrets)?);
        r.add(azure::load(&spec.azure, secrets)?);
        r.add(resend::load(&spec.resend, secrets)?);
        // Providers that sign nothing differ only in how an item maps to an event.
        let token_auth: [(_, _, webhook::EventOf); 3] = [
            (brevo::NAME, &spec.brevo, brevo::event_of),
            (mailjet::NAME, &spec.mailjet, mailjet::event_of),
            (sparkpost::NAME, &spec.sparkpost, sparkpost::item_of),
        ];
        for (name, spec, event_of) in token_auth {
            r.add(webhook::token_auth(name, spec, secrets, event_of)?);
        }
        Ok(r)
    }

    fn add(&mut self, provider: Option<impl Adapter + 'static>) {
        if let Some(p) = provider {
            self.0.insert(p.name(), Arc::new(p));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Adapter>> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }
}

/// Every reason table, under the name its copy in docs/providers.md carries (the line
/// `<!-- reasons: NAME -->` before it). Resend maps with SES's table.
#[cfg(test)]
const DOC_TABLES: &[(&str, &[(&str, bounce_classify::Reason)])] = &[
    ("ses bounceSubType", ses::SUB_TYPES),
    ("sendgrid bounce_classification", sendgrid::CLASSIFICATIONS),
    ("sendgrid dropped reason", sendgrid::DROPPED),
    ("postmark Type", postmark::TYPES),
    ("forwardemail bounce.category", forwardemail::CATEGORIES),
    ("mailgun reason", mailgun::REASONS),
    ("lettermint event", lettermint::EVENTS),
    ("azure data.status", azure::STATUSES),
    ("brevo event", brevo::EVENTS),
    ("mailjet error", mailjet::ERRORS),
    ("mailjet error_related_to", mailjet::RELATED),
    ("sparkpost bounce_class", sparkpost::CLASSES),
];

#[cfg(test)]
mod tests {
    use super::DOC_TABLES;

    /// The tables of docs/providers.md: (name, rows of (value, reason name)), in order.
    fn doc_tables(doc: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out = Vec::new();
        let mut lines = doc.lines();
        while let Some(line) = lines.next() {
            let Some(name) = line
                .trim()
                .strip_prefix("<!-- reasons:")
                .and_then(|l| l.strip_suffix("-->"))
            else {
                continue;
            };
            let cell = |c: &str| c.trim().trim_matches('`').to_owned();
            let rows = lines
                .by_ref()
                .take_while(|l| l.starts_with('|'))
                .skip(2) // the header and the separator
                .map(|l| {
                    let cells: Vec<&str> = l.split('|').collect();
                    assert_eq!(cells.len(), 4, "{name}: {l:?} is not a two-column row");
                    (cell(cells[1]), cell(cells[2]))
                })
                .collect();
            out.push((name.trim().to_owned(), rows));
        }
        out
    }

    #[test]
    fn docs_tables_are_the_code_tables() {
        let doc = include_str!("../../../docs/providers.md");
        let docs = doc_tables(doc);
        let code: Vec<(String, Vec<(String, String)>)> = DOC_TABLES
            .iter()
            .map(|(name, rows)| {
                let rows = rows
                    .iter()
                    .map(|(k, r)| ((*k).to_owned(), r.as_str().to_owned()))
                    .collect();
                ((*name).to_owned(), rows)
            })
            .collect();
        for (name, rows) in &code {
            let found = docs.iter().find(|(n, _)| n == name);
            let Some((_, doc_rows)) = found else {
                panic!("docs/providers.md has no table `<!-- reasons: {name} -->`");
            };
            assert_eq!(doc_rows, rows, "docs/providers.md, table {name}");
        }
        assert_eq!(
            docs.len(),
            code.len(),
            "a table in the docs has no code table"
        );
    }

    #[test]
    fn a_doc_table_is_read_as_written() {
        let doc =
            "x\n<!-- reasons: p f -->\n| `f` | reason |\n|---|---|\n| `A b` | `onhold` |\n\nafter";
        assert_eq!(
            doc_tables(doc),
            [(
                "p f".to_owned(),
                vec![("A b".to_owned(), "onhold".to_owned())]
            )]
        );
    }
}

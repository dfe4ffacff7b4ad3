//! The provider most adapters are: an authentication (`Authenticate`: HMAC headers, a
//! public-key signature, credentials in the URL) and a parse of the authenticated body,
//! neither of which needs the network or the store. The providers that do (SES's
//! certificates, Mailgun's single-use tokens) implement `Provider` themselves.

use bounceops_api::TokenAuthProvider;
use serde_json::Value;

use super::credentials::UrlCredentials;
use super::payload::{json, one_or_many};
use super::{Adapter, Admitted, Checking, Context, Head, Incoming, Loaded, Received, Rejection};
use crate::event::BounceEvent;
use crate::secrets::SecretsDir;

/// How a provider proves that a request is its own.
pub trait Authenticate: Send + Sync + 'static {
    /// What the head alone proves, before the body is read (`Provider::admit`).
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection>;

    /// Every check of the raw request, `admit`'s included: the one check once the body is
    /// read, so that no path to `parse` skips one. By default `admit`'s, for providers
    /// whose head is the whole proof.
    fn verify(&self, req: &Incoming) -> Result<(), Rejection> {
        self.admit(&req.head()).map(drop)
    }
}

/// What a provider's events are made of: the authenticated raw request into events or a
/// handshake. Pure: no I/O.
pub type Parse = Box<dyn Fn(&Incoming) -> Result<Received, Rejection> + Send + Sync>;

/// A provider event (one JSON item) into a bounce, or none for events that are not one.
pub type EventOf = fn(Value) -> Option<BounceEvent>;

/// A provider that is its authentication and its parse.
pub struct Webhook<A> {
    name: &'static str,
    auth: A,
    parse: Parse,
}

impl<A: Authenticate> Webhook<A> {
    pub fn new(
        name: &'static str,
        auth: A,
        parse: impl Fn(&Incoming) -> Result<Received, Rejection> + Send + Sync + 'static,
    ) -> Webhook<A> {
        Webhook {
            name,
            auth,
            parse: Box::new(parse),
        }
    }
}

impl<A: Authenticate> Adapter for Webhook<A> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        self.auth.admit(head)
    }

    fn receive<'a>(&'a self, req: &'a Incoming, _: &'a Context) -> Checking<'a, Received> {
        let received = self.auth.verify(req).and_then(|()| (self.parse)(req));
        Box::pin(std::future::ready(received))
    }

    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The parse of a body that is one item or an array of them, each mapped by `event_of`.
pub fn each_item(req: &Incoming, event_of: EventOf) -> Result<Received, Rejection> {
    let items = one_or_many(json(&req.body)?)?;
    Ok(Received::Events(
        items.into_iter().filter_map(event_of).collect(),
    ))
}

/// A provider without signatures (Brevo, Mailjet, SparkPost): credentials in the webhook
/// URL or Basic auth, and a JSON body of one item or an array of them, each mapped by the
/// provider's `event_of`. `None` when it is not enabled.
pub fn token_auth(
    name: &'static str,
    spec: &TokenAuthProvider,
    secrets: &SecretsDir,
    event_of: EventOf,
) -> Loaded<Webhook<UrlCredentials>> {
    if !spec.enabled {
        return Ok(None);
    }
    let credentials = UrlCredentials::load(name, spec, secrets)?;
    Ok(Some(Webhook::new(name, credentials, move |req| {
        each_item(req, event_of)
    })))
}

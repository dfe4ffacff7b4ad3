//! Brevo's transactional webhooks (no signature: Basic credentials or a token in the
//! webhook URL): `hard_bounce`, `soft_bounce`, `blocked`, `invalid_email`, `spam`.

use bounceops_api::TokenAuthProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{
    UrlCredentials, campaign_in, campaign_in_text, content_id, event, json, one_or_many, recipient,
    str_at, time,
};
use super::{ConfigIssue, Context, Incoming, Provider, Received, Rejection};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "brevo";

pub struct Brevo {
    credentials: UrlCredentials,
}

impl Brevo {
    pub fn load(
        spec: &TokenAuthProvider,
        secrets: &SecretsDir,
    ) -> Result<Option<Brevo>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        Ok(Some(Brevo {
            credentials: UrlCredentials::load(NAME, spec, secrets)?,
        }))
    }
}

impl Provider for Brevo {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(std::future::ready(self.credentials.verify(req)))
    }

    fn parse(&self, req: &Incoming) -> Result<Received, Rejection> {
        let items = one_or_many(json(&req.body)?)?;
        Ok(Received::Events(
            items.into_iter().filter_map(event_of).collect(),
        ))
    }
}

pub fn event_of(item: Value) -> Option<BounceEvent> {
    let kind = str_at(&item, "/event")?;
    let t = match kind {
        "hard_bounce" | "blocked" | "invalid_email" => BounceType::Hard,
        "soft_bounce" => BounceType::Soft,
        "spam" | "complaint" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&item, "/email"))?;
    // Brevo's `id` names the webhook, not the event: message id, event and recipient do.
    let id = match str_at(&item, "/message-id") {
        Some(m) => format!("{m}:{kind}:{email}"),
        None => content_id(&item),
    };
    let campaign = campaign_in_text(str_at(&item, "/X-Mailin-custom"))
        .or_else(|| campaign_in(item.get("headers")));
    let created_at = time(item.get("ts_event")).or_else(|| time(item.get("date")));
    let mut e = event(NAME, email, t, item, Some(id));
    e.campaign_uuid = campaign;
    e.created_at = created_at;
    Some(e)
}

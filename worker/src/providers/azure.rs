//! Azure Communication Services e-mail delivery reports, delivered by Event Grid: the
//! subscription-validation handshake, a shared secret (the `code` query parameter or a
//! header), and `Microsoft.Communication.EmailDeliveryReportReceived` events.

use bounceops_api::AzureProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{content_id, ct_eq, event, json, one_or_many, recipient, str_at, time};
use super::{ConfigIssue, Context, Incoming, Provider, Received, Rejection, required_secret};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "azure";
const DELIVERY_REPORT: &str = "Microsoft.Communication.EmailDeliveryReportReceived";
const VALIDATION: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

pub struct Azure {
    secret: String,
    header: String,
}

impl Azure {
    pub fn load(spec: &AzureProvider, secrets: &SecretsDir) -> Result<Option<Azure>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let secret = required_secret(
            secrets,
            "azure.sharedSecretRef",
            spec.shared_secret_ref.as_ref(),
        )?;
        Ok(Some(Azure {
            secret,
            header: spec.secret_header.clone(),
        }))
    }

    fn check(&self, req: &Incoming) -> Result<(), Rejection> {
        let given = req
            .query_param("code")
            .or_else(|| req.header(&self.header).map(|s| s.trim().to_owned()))
            .ok_or(Rejection::Unauthorized(
                "missing shared secret (code parameter or header)",
            ))?;
        if ct_eq(self.secret.as_bytes(), given.as_bytes()) {
            Ok(())
        } else {
            Err(Rejection::Unauthorized("shared secret does not match"))
        }
    }
}

impl Provider for Azure {
    type Verified = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(std::future::ready(self.check(req)))
    }

    fn parse(&self, req: &Incoming, _: ()) -> Result<Received, Rejection> {
        let events = one_or_many(json(&req.body)?)?;
        if req.header("aeg-event-type") == Some("SubscriptionValidation")
            || events
                .iter()
                .any(|e| str_at(e, "/eventType") == Some(VALIDATION))
        {
            let code = events
                .iter()
                .find_map(|e| str_at(e, "/data/validationCode"))
                .ok_or_else(|| Rejection::Malformed("missing data.validationCode".into()))?;
            return Ok(Received::Reply(
                serde_json::json!({ "validationResponse": code }),
            ));
        }
        Ok(Received::Events(
            events.into_iter().filter_map(event_of).collect(),
        ))
    }
}

/// One Event Grid event into a bounce; delivered, expanded and other statuses give none.
pub fn event_of(ev: Value) -> Option<BounceEvent> {
    if str_at(&ev, "/eventType") != Some(DELIVERY_REPORT) {
        return None;
    }
    let status = str_at(&ev, "/data/status")
        .unwrap_or("")
        .to_ascii_lowercase();
    let details = str_at(&ev, "/data/deliveryStatusDetails/statusMessage").unwrap_or("");
    let t = match status.as_str() {
        "bounced" | "suppressed" => BounceType::Hard,
        "failed" => match enhanced_status_class(details) {
            Some('5') => BounceType::Hard,
            _ => BounceType::Soft,
        },
        "filteredspam" | "quarantined" => BounceType::Soft,
        _ => return None,
    };
    let email = recipient(str_at(&ev, "/data/recipient"))?;
    let id = str_at(&ev, "/id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&ev));
    let created_at = time(ev.pointer("/data/deliveryAttemptTimeStamp"))
        .or_else(|| time(ev.pointer("/data/deliveryAttemptTimestamp")))
        .or_else(|| time(ev.get("eventTime")));
    let mut e = event(NAME, email, t, ev, id);
    e.created_at = created_at;
    Some(e)
}

/// The class digit of the first RFC 3463 status (`5.1.1`) in a free-text message.
fn enhanced_status_class(text: &str) -> Option<char> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(4)).find_map(|i| {
        let w = &b[i..i + 5];
        let boundary_before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        (boundary_before
            && matches!(w[0], b'2' | b'4' | b'5')
            && w[1] == b'.'
            && w[2].is_ascii_digit()
            && w[3] == b'.'
            && w[4].is_ascii_digit())
        .then_some(w[0] as char)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_class_in_text() {
        assert_eq!(enhanced_status_class("550 5.1.1 user unknown"), Some('5'));
        assert_eq!(enhanced_status_class("451 4.2.2 mailbox full"), Some('4'));
        assert_eq!(enhanced_status_class("v15.1.1"), None);
        assert_eq!(enhanced_status_class("timeout"), None);
    }
}

//! The provider webhooks of a `BounceConfig` (`spec.providers.*`): which e-mail services may
//! post bounces to `/webhooks/service/<provider>`, and the secrets that authenticate them.
//!
//! Every provider is off unless `enabled: true`. The worker refuses to start when an enabled
//! provider lacks the secret it needs, so a forged request can never be accepted for want of
//! configuration.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// The Secret each provider needs when it is enabled: any one of these references under
/// `spec.providers.<provider>`. The one statement of the rule: the CRD's CEL rules
/// ([`required_secret_rules`]), `validate()` and the worker's loaders all read it. A
/// provider without a row (generic, SES: authenticated otherwise) needs none.
pub const REQUIRED_SECRETS: &[(&str, &[&str])] = &[
    ("sendgrid", &["publicKeySecretRef"]),
    ("postmark", &["credentialsSecretRef"]),
    ("forwardemail", &["keySecretRef"]),
    ("mailgun", &["signingKeySecretRef"]),
    ("lettermint", &["signingKeySecretRef"]),
    ("azure", &["sharedSecretRef"]),
    ("resend", &["signingSecretRef"]),
    ("brevo", &["tokenSecretRef", "credentialsSecretRef"]),
    ("mailjet", &["tokenSecretRef", "credentialsSecretRef"]),
    ("sparkpost", &["tokenSecretRef", "credentialsSecretRef"]),
];

/// What is said of an enabled provider without its secret, at the reference's field when
/// the provider takes one kind of secret.
pub const SECRET_REQUIRED: &str = "required when the provider is enabled";

/// The same, at the provider's field when it takes either of two (`refs`).
pub fn secret_required_of_either(refs: &[&str]) -> String {
    format!(
        "{} is required when the provider is enabled",
        refs.join(" or ")
    )
}

/// The CRD's CEL rules for [`REQUIRED_SECRETS`], on `spec.providers`: the API server refuses
/// an enabled provider without its secret, in the words `kubectl apply` shows.
pub fn required_secret_rules(schema: &mut schemars::Schema) {
    let rules: Vec<serde_json::Value> = REQUIRED_SECRETS
        .iter()
        .map(|(provider, refs)| {
            let has = refs
                .iter()
                .map(|r| format!("has(self.{provider}.{r})"))
                .collect::<Vec<_>>()
                .join(" || ");
            let message = match refs {
                [one] => format!("providers.{provider}.{one} is required when enabled"),
                _ => format!(
                    "providers.{provider} needs {} when enabled",
                    refs.join(" or ")
                ),
            };
            serde_json::json!({
                "rule": format!("!has(self.{provider}) || !has(self.{provider}.enabled) || !self.{provider}.enabled || {has}"),
                "message": message,
            })
        })
        .collect();
    schema.insert("x-kubernetes-validations".into(), rules.into());
}

/// Amazon SES, through an SNS topic subscribed over HTTPS.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SesProvider {
    /// Accept SNS messages at `/webhooks/service/ses`.
    #[serde(default)]
    pub enabled: bool,
    /// SNS topic ARNs accepted; messages of any other topic are refused. Empty accepts every
    /// topic (the worker warns at start-up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub topic_arns: Vec<String>,
    /// Regular expression the whole `SigningCertURL` must match before the certificate is
    /// fetched. Default: `https://sns.<region>.amazonaws.com(.cn)/SimpleNotificationService-<id>.pem`.
    /// URLs with user info, a query or a fragment are refused whatever the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub cert_url_pattern: Option<String>,
    /// Largest accepted difference, in seconds, between a message's signed `Timestamp` and
    /// the worker's clock; other messages are refused as replays. SNS keeps the first
    /// attempt's `Timestamp` on every retry, and retries HTTPS deliveries for at most an
    /// hour: the default is that hour plus 5 minutes of clock skew.
    #[serde(default = "default_tolerance_sns")]
    #[schemars(range(min = 1, max = 86400))]
    pub tolerance_seconds: u32,
}

impl Default for SesProvider {
    fn default() -> Self {
        SesProvider {
            enabled: false,
            topic_arns: Vec::new(),
            cert_url_pattern: None,
            tolerance_seconds: default_tolerance_sns(),
        }
    }
}

/// SendGrid's Event Webhook with signature verification turned on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendgridProvider {
    /// Accept events at `/webhooks/service/sendgrid`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding the webhook's verification key (base64 DER public key, as SendGrid
    /// shows it). Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_secret_ref: Option<SecretRef>,
    /// Largest accepted difference, in seconds, between the signed timestamp and the
    /// worker's clock; older requests are refused as replays.
    #[serde(default = "default_tolerance_sendgrid")]
    #[schemars(range(min = 1, max = 86400))]
    pub tolerance_seconds: u32,
}

impl Default for SendgridProvider {
    fn default() -> Self {
        SendgridProvider {
            enabled: false,
            public_key_secret_ref: None,
            tolerance_seconds: default_tolerance_sendgrid(),
        }
    }
}

/// Postmark's bounce and spam-complaint webhooks, authenticated with HTTP Basic.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostmarkProvider {
    /// Accept records at `/webhooks/service/postmark`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding lines of `user:password`, the Basic credentials put in the webhook
    /// URL at Postmark. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

/// Forward Email's bounce webhook, signed with HMAC-SHA256.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardemailProvider {
    /// Accept bounces at `/webhooks/service/forwardemail`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding the webhook signature key of the Forward Email account. Required
    /// when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretRef>,
}

/// Mailgun's webhooks (`failed`, `complained`), signed with the webhook signing key.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailgunProvider {
    /// Accept events at `/webhooks/service/mailgun`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding the HTTP webhook signing key of the Mailgun account. Required when
    /// enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret_ref: Option<SecretRef>,
    /// Largest accepted age, in seconds, of the signed timestamp; each signature token is
    /// accepted for one request body only.
    #[serde(default = "default_tolerance_short")]
    #[schemars(range(min = 1, max = 86400))]
    pub tolerance_seconds: u32,
}

impl Default for MailgunProvider {
    fn default() -> Self {
        MailgunProvider {
            enabled: false,
            signing_key_secret_ref: None,
            tolerance_seconds: default_tolerance_short(),
        }
    }
}

/// Lettermint's webhooks, signed with HMAC-SHA256 (`X-Lettermint-Signature`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LettermintProvider {
    /// Accept events at `/webhooks/service/lettermint`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding the webhook's signing secret. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret_ref: Option<SecretRef>,
}

/// Azure Communication Services e-mail delivery reports, delivered by Event Grid.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureProvider {
    /// Accept Event Grid deliveries at `/webhooks/service/azure`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding a shared secret that every delivery carries, as the `code` query
    /// parameter of the endpoint URL or in the header named by `secretHeader`. Required when
    /// enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_secret_ref: Option<SecretRef>,
    /// Header that may carry the shared secret (an Event Grid delivery property).
    #[serde(default = "default_azure_header")]
    #[schemars(length(min = 1, max = 256))]
    pub secret_header: String,
}

impl Default for AzureProvider {
    fn default() -> Self {
        AzureProvider {
            enabled: false,
            shared_secret_ref: None,
            secret_header: default_azure_header(),
        }
    }
}

/// Resend's webhooks, signed by Svix.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResendProvider {
    /// Accept events at `/webhooks/service/resend`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding the webhook's signing secret (`whsec_...`). Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_ref: Option<SecretRef>,
}

/// A provider that signs nothing (Brevo, Mailjet, SparkPost): its webhook URL carries
/// credentials that the worker checks. At least one of the two secrets is required when
/// enabled; either one then admits a request.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuthProvider {
    /// Accept events at `/webhooks/service/<provider>`.
    #[serde(default)]
    pub enabled: bool,
    /// Secret key holding lines of `user:password`, accepted as HTTP Basic credentials
    /// (`https://user:password@host/...` in the provider's webhook settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Secret key holding a token, accepted as the `token` query parameter of the webhook URL
    /// or as `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretRef>,
}

fn default_tolerance_sendgrid() -> u32 {
    600
}

fn default_tolerance_sns() -> u32 {
    3900
}

fn default_tolerance_short() -> u32 {
    300
}

fn default_azure_header() -> String {
    "X-Listmonk-Webhook-Secret".to_owned()
}

/// The regular expression of `ses.certUrlPattern`, anchored whatever the user wrote: a
/// pattern must describe the whole URL, or `https://evil.example/?sns.amazonaws.com` would
/// match. Here so that the check of the spec and the worker's use compile the same text.
pub fn cert_url_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

impl crate::ProvidersSpec {
    /// The secrets that the enabled providers reference, for mounting them into the worker.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        let mut refs: Vec<Option<&SecretRef>> = Vec::new();
        if self.sendgrid.enabled {
            refs.push(self.sendgrid.public_key_secret_ref.as_ref());
        }
        if self.postmark.enabled {
            refs.push(self.postmark.credentials_secret_ref.as_ref());
        }
        if self.forwardemail.enabled {
            refs.push(self.forwardemail.key_secret_ref.as_ref());
        }
        if self.mailgun.enabled {
            refs.push(self.mailgun.signing_key_secret_ref.as_ref());
        }
        if self.lettermint.enabled {
            refs.push(self.lettermint.signing_key_secret_ref.as_ref());
        }
        if self.azure.enabled {
            refs.push(self.azure.shared_secret_ref.as_ref());
        }
        if self.resend.enabled {
            refs.push(self.resend.signing_secret_ref.as_ref());
        }
        for p in [&self.brevo, &self.mailjet, &self.sparkpost] {
            if p.enabled {
                refs.push(p.credentials_secret_ref.as_ref());
                refs.push(p.token_secret_ref.as_ref());
            }
        }
        refs.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{ProvidersSpec, SecretRef};

    #[test]
    fn design_fields_parse_and_default_off() {
        let spec: ProvidersSpec = serde_yaml::from_str(
            r#"
generic: {enabled: true}
ses: {enabled: true, topicArns: ["arn:aws:sns:eu-west-1:123456789012:ses-bounces"]}
sendgrid: {enabled: true, publicKeySecretRef: {name: sendgrid, key: public-key}, toleranceSeconds: 600}
postmark: {enabled: true, credentialsSecretRef: {name: postmark, key: credentials}}
forwardemail: {enabled: true, keySecretRef: {name: forwardemail, key: key}}
mailgun: {enabled: true, signingKeySecretRef: {name: mailgun, key: signing-key}}
brevo: {enabled: true, tokenSecretRef: {name: brevo, key: token}}
"#,
        )
        .unwrap();
        assert!(spec.ses.enabled);
        assert_eq!(spec.ses.cert_url_pattern, None);
        assert_eq!(spec.mailgun.tolerance_seconds, 300);
        assert!(!spec.resend.enabled && !spec.azure.enabled && !spec.sparkpost.enabled);
        assert_eq!(spec.azure.secret_header, "X-Listmonk-Webhook-Secret");
        let names: Vec<&str> = spec
            .secret_refs()
            .iter()
            .map(|r: &&SecretRef| r.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["sendgrid", "postmark", "forwardemail", "mailgun", "brevo"]
        );
    }
}

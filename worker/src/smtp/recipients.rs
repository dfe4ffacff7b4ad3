//! Who may be mailed (RCPT TO): signed VERP addresses on the bounce domains, the plain
//! bounce addresses, the feedback-loop addresses. Everything else is refused at RCPT, so
//! nothing is queued for it and no backscatter is made.

use super::config::SmtpConfig;
use super::verp::{Verp, VerpError};

/// An accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A signed VERP address: the token names the subscriber and campaign.
    Verp { address: String, verp: Verp },
    /// A plain bounce address (`spec.smtp.addresses`): matched like a mailbox's bounce.
    Plain { address: String },
    /// A feedback-loop address (`spec.smtp.feedbackAddresses`): ARF complaints.
    Feedback { address: String },
}

impl Recipient {
    pub fn address(&self) -> &str {
        match self {
            Recipient::Verp { address, .. }
            | Recipient::Plain { address }
            | Recipient::Feedback { address } => address,
        }
    }
}

/// Why a recipient is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not one of ours: `550 5.1.1`.
    Unknown,
    /// Our VERP shape with a token that does not verify: `550 5.7.1`.
    Forged,
}

pub fn judge(config: &SmtpConfig, address: &str) -> Result<Recipient, Refused> {
    let address = address.to_ascii_lowercase();
    if config.feedback_addresses.contains(&address) {
        return Ok(Recipient::Feedback { address });
    }
    if config.addresses.contains(&address) {
        return Ok(Recipient::Plain { address });
    }
    let Some((_, domain)) = address.rsplit_once('@') else {
        return Err(Refused::Unknown);
    };
    if !config.domains.iter().any(|d| d == domain) {
        return Err(Refused::Unknown);
    }
    match config.keys.open_address(&config.verp_prefix, &address) {
        Ok(verp) => Ok(Recipient::Verp { address, verp }),
        Err(VerpError::NotVerp) => Err(Refused::Unknown),
        Err(VerpError::BadSignature) => Err(Refused::Forged),
    }
}

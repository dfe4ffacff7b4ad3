//! The worker's roles: the `--role` of `bounce-worker run`, which the operator writes into
//! each Deployment and the worker parses, one enum for both sides.

use std::fmt;
use std::str::FromStr;

/// One part of the work, run by its own Deployment in a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The webhooks, the bounce API and the export.
    Webhook,
    /// The bounce mailboxes' scanner.
    Mailbox,
    /// The bounce MX (`spec.smtp`).
    Smtp,
    /// The sending relay (`spec.relay`), as a Deployment or as listmonk's sidecar.
    Relay,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Webhook, Role::Mailbox, Role::Smtp, Role::Relay];

    /// The `--role` argument, and the pods' `app.kubernetes.io/component` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Webhook => "webhook",
            Role::Mailbox => "mailbox",
            Role::Smtp => "smtp",
            Role::Relay => "relay",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: one of {names}", names = Role::ALL.map(|r| r.as_str()).join(", "))]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reads_back_from_its_name() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("all".parse::<Role>().is_err());
    }
}

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

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}: one of {}", names.join(", "))
            })
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

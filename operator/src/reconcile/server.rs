//! The oldest Kubernetes the operator supports, and the check of the API server against it.
//!
//! The minimum is the version k8s-openapi is compiled for (the kube-rs convention: the
//! crate's `v1_*` feature names the oldest API server supported), so a field the oldest
//! server lacks does not compile, and [`MINIMUM`] moves with the feature by itself. kube 5
//! builds on k8s-openapi 0.29, whose oldest version is 1.33.
//!
//! On an older server the children would be refused, or worse accepted with the fields
//! it does not know dropped (a 1.29 server keeps a `preStop` hook whose `sleep` it does
//! not know, and then refuses it as empty). So the reconcile stops before building
//! anything and says why, in the status and once in the log.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::apimachinery::pkg::version::Info;

/// A Kubernetes minor release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

k8s_openapi::k8s_if_1_33! { pub const MINIMUM: Version = Version { major: 1, minor: 33 }; }
k8s_openapi::k8s_if_1_34! { pub const MINIMUM: Version = Version { major: 1, minor: 34 }; }
k8s_openapi::k8s_if_1_35! { pub const MINIMUM: Version = Version { major: 1, minor: 35 }; }
k8s_openapi::k8s_if_1_36! { pub const MINIMUM: Version = Version { major: 1, minor: 36 }; }
k8s_openapi::k8s_if_1_37! { pub const MINIMUM: Version = Version { major: 1, minor: 37 }; }

impl Version {
    /// The release `/version` reports. Its `minor` may carry a provider's suffix (GKE and
    /// EKS answer `"33+"`), so the digits are read from the front; `gitVersion`
    /// (`v1.33.1-eks-…`) is the fallback when `major`/`minor` are empty.
    pub fn of(info: &Info) -> Option<Version> {
        let number = |s: &str| -> Option<u32> {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        match (number(&info.major), number(&info.minor)) {
            (Some(major), Some(minor)) => Some(Version { major, minor }),
            _ => {
                let mut parts = info.git_version.trim_start_matches('v').split('.');
                Some(Version {
                    major: number(parts.next()?)?,
                    minor: number(parts.next()?)?,
                })
            }
        }
    }
}

/// Why the server cannot be served, as the status's Degraded message says it.
pub fn unsupported(info: &Info, version: Version) -> Option<String> {
    (version < MINIMUM).then(|| {
        format!(
            "the Kubernetes API server is {} and BounceOps needs {MINIMUM} or newer: no \
             workers are created until the control plane is upgraded",
            if info.git_version.is_empty() {
                version.to_string()
            } else {
                info.git_version.clone()
            }
        )
    })
}

/// What the operator knows of the server it talks to. Asked on every reconcile until the
/// server is found new enough, so an upgraded control plane heals without restarting the
/// operator; never again after that (a control plane is not downgraded in place).
#[derive(Default)]
pub struct ServerCheck {
    supported: AtomicBool,
    said: AtomicBool,
}

impl ServerCheck {
    /// `None` when the server is supported; else the problem to put in the status.
    pub async fn problem(&self, client: &kube::Client) -> Result<Option<String>, kube::Error> {
        if self.supported.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let info = client.apiserver_version().await?;
        let found = Version::of(&info);
        let problem = found.and_then(|v| unsupported(&info, v));
        match (&problem, found) {
            (None, Some(_)) => self.supported.store(true, Ordering::Relaxed),
            // A server that does not say its version is given the benefit of the doubt:
            // what it refuses is reported as ApplyFailed, as on any server.
            (None, None) => {
                if !self.said.swap(true, Ordering::Relaxed) {
                    tracing::warn!(git_version = %info.git_version, major = %info.major, minor = %info.minor,
                        "could not read the Kubernetes version from /version; going on as if it were supported");
                }
                self.supported.store(true, Ordering::Relaxed);
            }
            (Some(p), _) => {
                if !self.said.swap(true, Ordering::Relaxed) {
                    tracing::error!(minimum = %MINIMUM, "{p}; every BounceConfig is marked Degraded (UnsupportedKubernetesVersion)");
                }
            }
        }
        Ok(problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Info::default()
        }
    }

    #[test]
    fn versions_are_read_as_providers_report_them() {
        let v = |major, minor| Some(Version { major, minor });
        assert_eq!(Version::of(&info("1", "33", "v1.33.1")), v(1, 33));
        assert_eq!(
            Version::of(&info("1", "30+", "v1.30.4-gke.1348000")),
            v(1, 30)
        );
        assert_eq!(Version::of(&info("", "", "v1.29.14-eks-bc803b4")), v(1, 29));
        assert_eq!(Version::of(&info("", "", "")), None);
    }

    #[test]
    fn only_servers_older_than_the_minimum_are_refused() {
        let older = Version {
            major: 1,
            minor: 29,
        };
        assert!(older < MINIMUM);
        let message = unsupported(&info("1", "29", "v1.29.14"), older).expect("refused");
        assert!(
            message.contains("v1.29.14") && message.contains(&MINIMUM.to_string()),
            "{message}"
        );
        assert_eq!(unsupported(&info("", "", ""), MINIMUM), None);
        let newer = Version {
            major: 1,
            minor: MINIMUM.minor + 1,
        };
        assert_eq!(unsupported(&info("", "", ""), newer), None);
        assert!(Version { major: 2, minor: 0 } > MINIMUM);
    }
}

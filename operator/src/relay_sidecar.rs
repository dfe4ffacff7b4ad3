//! `bounce-operator relay-sidecar`: the patch that adds the sending relay to listmonk's
//! Deployment as a native sidecar, printed from a BounceConfig file with the very rendering
//! the operator uses for the relay's own Deployment (docs/relay.md).

use bounceops_api::decode::spec_from_yaml;
use bounceops_api::{BounceConfig, Problem};

use crate::reconcile::desired::{Settings, sidecar_patch};
use crate::reconcile::validate;

/// Why there is no patch: the file is no valid BounceConfig, or it has no `spec.relay`.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("{0}")]
    Spec(#[from] Problem),
    #[error("{0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("metadata.name: required: the sidecar mounts the ConfigMap <name>-config")]
    NoName,
    /// The operator would not run this config; a sidecar of it would crash-loop.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    #[error("spec.relay: required: the sidecar is the relay")]
    NoRelay,
}

/// The YAML patch for `kubectl patch deployment <listmonk> --patch-file`, or why there is
/// none.
pub fn patch_yaml(config_text: &str, settings: &Settings) -> Result<String, SidecarError> {
    let spec = spec_from_yaml(config_text)?;
    let value: serde_yaml::Value = serde_yaml::from_str(config_text)?;
    let name = value["metadata"]["name"]
        .as_str()
        .ok_or(SidecarError::NoName)?;
    let mut cfg = BounceConfig::new(name, spec);
    cfg.metadata.namespace = value["metadata"]["namespace"].as_str().map(str::to_owned);
    let problems = validate::problems(&cfg);
    if !problems.is_empty() {
        return Err(SidecarError::Invalid(problems));
    }
    if cfg.spec.relay.is_none() {
        return Err(SidecarError::NoRelay);
    }
    let patch = serde_yaml::to_string(&sidecar_patch(&cfg, settings))?;
    let ns = cfg
        .metadata
        .namespace
        .as_deref()
        .map(|ns| format!("-n {ns} "))
        .unwrap_or_default();
    Ok(format!(
        "# The sending relay as a native sidecar of listmonk's pod, for BounceConfig {name}.\n\
         # listmonk's Deployment must be in the BounceConfig's namespace (it mounts the\n\
         # ConfigMap {name}-config and the relay's Secrets). Apply with:\n\
         #   kubectl {ns}patch deployment listmonk --patch-file relay-sidecar.yaml\n\
         {patch}"
    ))
}

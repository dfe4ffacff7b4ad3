//! `bounce-operator relay-sidecar`: the patch that adds the sending relay to listmonk's
//! Deployment as a native sidecar, printed from a BounceConfig file with the very rendering
//! the operator uses for the relay's own Deployment (docs/relay.md).

use bounceops_api::BounceConfig;
use bounceops_api::decode::spec_from_yaml;

use crate::reconcile::desired::{Settings, sidecar_patch};
use crate::reconcile::validate;

/// The YAML patch for `kubectl patch deployment <listmonk> --patch-file`, or why there is
/// none: the file is no valid BounceConfig, or it has no `spec.relay`.
pub fn patch_yaml(config_text: &str, settings: &Settings) -> Result<String, String> {
    let spec = spec_from_yaml(config_text).map_err(|p| p.to_string())?;
    let value: serde_yaml::Value = serde_yaml::from_str(config_text).map_err(|e| e.to_string())?;
    let name = value["metadata"]["name"]
        .as_str()
        .ok_or("metadata.name: required: the sidecar mounts the ConfigMap <name>-config")?;
    let mut cfg = BounceConfig::new(name, spec);
    cfg.metadata.namespace = value["metadata"]["namespace"].as_str().map(str::to_owned);
    // The operator would not run this config; a sidecar of it would crash-loop.
    let problems: Vec<String> = validate::problems(&cfg)
        .iter()
        .map(ToString::to_string)
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    if cfg.spec.relay.is_none() {
        return Err("spec.relay: required: the sidecar is the relay".into());
    }
    let patch = serde_yaml::to_string(&sidecar_patch(&cfg, settings)).map_err(|e| e.to_string())?;
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

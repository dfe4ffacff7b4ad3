//! bounce-operator: reconciles `BounceConfig` resources (the `bounceops-api` crate) into
//! the worker's children. The reconcile is pure where it can be ([`reconcile`]'s phase
//! modules); [`controller`] only wires watches, the leader Lease and shutdown to it.

pub mod controller;
pub mod crd;
pub mod http;
pub mod metrics;
pub mod rbac;
pub mod reconcile;
pub mod relay_sidecar;

/// The one field manager (server-side apply), Event reporter and `managed-by` label.
pub const MANAGER: &str = "bounce-operator";

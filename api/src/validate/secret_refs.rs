//! The bounds of every Secret reference, wherever it sits in the spec: those the operator
//! mounts (`crate::secret_refs`, the one walk of them), so a new provider's reference is
//! bounded without a change here, as the CRD bounds it through the shared `SecretRef` type.

use super::Report;
use crate::BounceConfigSpec;

pub(super) fn check(spec: &BounceConfigSpec, r: &mut Report) {
    for found in crate::secret_refs::collect(spec) {
        r.text(&format!("{}.name", found.field), &found.secret.name, 253);
        r.text(&format!("{}.key", found.field), &found.secret.key, 253);
    }
}

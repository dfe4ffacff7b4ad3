//! Request URIs as they may be logged: the value of every credential-like query parameter
//! (Azure's `code`, a `token` a provider's webhook URL carries, ...) replaced by `***`, at
//! every log level, so that whoever reads the logs cannot replay a webhook.

use axum::http::{Request, Uri};

/// Lower-cased parts of a parameter name that mark its value as a credential. Broad on
/// purpose: hiding a harmless value from a log costs little, showing a secret costs a lot.
const CREDENTIAL_NAMES: [&str; 8] = [
    "token",
    "code",
    "key",
    "secret",
    "pass",
    "sig",
    "auth",
    "credential",
];

/// The path and query of `uri`, credential-like query values replaced by `***`.
pub fn uri(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let pieces: Vec<String> = query
        .split('&')
        .map(|piece| {
            let (raw_name, has_value) = match piece.split_once('=') {
                Some((name, _)) => (name, true),
                None => (piece, false),
            };
            // The name as the application reads it (`%74oken` is `token`).
            let name: String = form_urlencoded::parse(raw_name.as_bytes())
                .map(|(k, _)| k.to_lowercase())
                .collect();
            match has_value && CREDENTIAL_NAMES.iter().any(|c| name.contains(c)) {
                true => format!("{raw_name}=***"),
                false => piece.to_owned(),
            }
        })
        .collect();
    format!("{}?{}", uri.path(), pieces.join("&"))
}

/// The span of one request for tower-http's `TraceLayer`: its own default records the
/// whole URI, query credentials included.
pub fn span<B>(request: &Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %uri(request.uri()),
        version = ?request.version(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_like_query_values_are_hidden() {
        let cases = [
            (
                "/webhooks/service/azure?code=s3cret",
                "/webhooks/service/azure?code=***",
            ),
            (
                "/webhooks/service/brevo?token=s3cret&x=1",
                "/webhooks/service/brevo?token=***&x=1",
            ),
            (
                "/a?api_key=s3cret&Access-Token=s3cret",
                "/a?api_key=***&Access-Token=***",
            ),
            ("/a?%74oken=s3cret", "/a?%74oken=***"),
            ("/a?sig=s3cret&password=s3cret", "/a?sig=***&password=***"),
            (
                "/api/bounces?page=2&source=api&order_by=email",
                "/api/bounces?page=2&source=api&order_by=email",
            ),
            ("/healthz", "/healthz"),
            ("/a?token", "/a?token"),
        ];
        for (given, logged) in cases {
            assert_eq!(uri(&given.parse().unwrap()), logged, "{given}");
        }
    }
}

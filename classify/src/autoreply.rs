//! Owns RFC 3834 auto-reply recognition (vacation, out-of-office), so such
//! replies are never counted as bounces.

use crate::mime::Mail;

/// Header evidence that only auto-responders set. `Auto-Submitted:
/// auto-replied` is deliberately not here: Exim and others put it on bounces
/// too, so it counts only when nothing looks like a bounce (see `is_weak`).
pub(crate) fn is_strong(mail: &Mail) -> bool {
    let h = &mail.headers;
    let flag = |name: &str| {
        h.get(name).is_some_and(|v| {
            !matches!(v.trim().to_ascii_lowercase().as_str(), "no" | "false" | "0")
        })
    };
    flag("x-autoreply")
        || flag("x-autorespond")
        || flag("x-autoresponder")
        || flag("x-vacation")
        || h.get("precedence")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("auto_reply"))
        || vacation_subject(&mail.subject)
}

/// `Auto-Submitted: auto-replied` (RFC 3834 §5), to be trusted only after the
/// message failed every bounce test.
pub(crate) fn is_weak(mail: &Mail) -> bool {
    mail.headers
        .get("auto-submitted")
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("auto-replied"))
}

fn vacation_subject(subject: &str) -> bool {
    let s = subject.trim().to_lowercase();
    const PREFIXES: &[&str] = &[
        "auto:",
        "autoreply",
        "auto-reply",
        "auto reply",
        "automatic reply",
        "automatische antwort",
        "réponse automatique",
        "reponse automatique",
        "risposta automatica",
        "respuesta automática",
        "out of office",
        "out of the office",
        "vacation",
        "on vacation",
        "away until",
        "away from",
        "i am away",
        "i am out",
        "abwesenheitsnotiz",
        "absence",
        "[auto-reply]",
        "autosvar",
    ];
    PREFIXES.iter().any(|p| s.starts_with(p))
        || s.contains("out of office")
        || s.contains("(auto-reply)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacation_by_subject_and_headers() {
        let m = Mail::parse(b"From: a@b.org\nSubject: Out of Office: back Monday\n\nAway.\n");
        assert!(is_strong(&m));
        let m = Mail::parse(b"From: a@b.org\nX-Autoreply: yes\nSubject: Re: news\n\nAway.\n");
        assert!(is_strong(&m));
        let m =
            Mail::parse(b"From: a@b.org\nAuto-Submitted: auto-replied\nSubject: Re: news\n\nx\n");
        assert!(!is_strong(&m) && is_weak(&m));
    }

    #[test]
    fn ordinary_reply_is_not_autoreply() {
        let m = Mail::parse(b"From: a@b.org\nSubject: Re: your newsletter\n\nThanks!\n");
        assert!(!is_strong(&m) && !is_weak(&m));
    }
}

//! From the upstream's answers to the one the sender gets, and to the refusals recorded:
//! the pure decision, apart from the network and the database.

/// One SMTP reply, as the upstream gave it: its code and its lines, the enhanced status code
/// (when it had one) at the head of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![text.to_owned()],
        }
    }

    /// smtp-proto's parsed reply put back as it was written: it takes the enhanced code out
    /// of the text (`esc`) and joins the lines of a multi-line reply with `\n`.
    pub fn from_response(r: &smtp_proto::Response<String>) -> Reply {
        let esc = match r.esc {
            [0, 0, 0] => String::new(),
            [a, b, c] => format!("{a}.{b}.{c} "),
        };
        let lines = r
            .message
            .split('\n')
            .map(|l| format!("{esc}{}", l.trim_end_matches('\r')))
            .collect();
        Reply {
            code: r.code,
            lines,
        }
    }

    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    pub fn positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    pub fn permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    pub fn temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// `2xx`, `4xx` or `5xx`: the `class` label of the recipients' metric.
    pub fn class(&self) -> &'static str {
        match self.code / 100 {
            2 => "2xx",
            4 => "4xx",
            _ => "5xx",
        }
    }
}

/// The upstream's side of one message: each recipient's RCPT answer, in the order of the
/// sender's RCPTs, and the answer to the message (`DATA` refused, or the reply after the
/// final dot), absent when no recipient was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub rcpt: Vec<Reply>,
    pub data: Option<Reply>,
}

impl Exchange {
    /// What became of each recipient: its RCPT refusal, or the message's answer.
    pub fn finals(&self) -> Vec<Reply> {
        self.rcpt
            .iter()
            .map(|r| match (&self.data, r.positive()) {
                (Some(data), true) => data.clone(),
                // Accepted, yet no message answer: the upstream never got that far.
                (None, true) => Reply::new(451, "4.4.1 No answer from the upstream server"),
                (_, false) => r.clone(),
            })
            .collect()
    }

    /// The answer the sender gets at the end of DATA. One recipient (listmonk sends one per
    /// message): the upstream's own answer for it, code and text unchanged, so the sender's
    /// error handling is what it was without the relay. Several: `250` when any was
    /// accepted (the refused ones are recorded; answering a refusal would make the sender
    /// send the message again to those that got it), else the first refusal.
    pub fn answer(&self) -> Reply {
        let finals = self.finals();
        if let Some(ok) = finals.iter().find(|r| r.positive()) {
            return ok.clone();
        }
        finals
            .into_iter()
            .next()
            .unwrap_or_else(|| Reply::new(554, "5.5.1 No valid recipients"))
    }

    /// Whether any recipient got the message.
    pub fn delivered(&self) -> bool {
        self.finals().iter().any(Reply::positive)
    }

    /// The recipients' refusals that become bounces: `5xx` always, `4xx` with
    /// `recordTemporaryFailures`. Indexes into the sender's RCPTs.
    pub fn to_record(&self, temporary_too: bool) -> Vec<(usize, Reply)> {
        self.finals()
            .into_iter()
            .enumerate()
            .filter(|(_, r)| r.permanent() || (temporary_too && r.temporary()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Reply {
        Reply::new(250, "2.1.5 Ok")
    }
    fn unknown() -> Reply {
        Reply::new(
            550,
            "5.1.1 <x@local.test>: Recipient address rejected: User unknown",
        )
    }

    #[test]
    fn one_recipient_gets_the_upstreams_own_answer() {
        let refused = Exchange {
            rcpt: vec![unknown()],
            data: None,
        };
        assert_eq!(refused.answer(), unknown());
        assert_eq!(refused.to_record(false), vec![(0, unknown())]);
        assert!(!refused.delivered());
        let queued = Reply::new(250, "2.0.0 Ok: queued as 4ABC");
        let accepted = Exchange {
            rcpt: vec![ok()],
            data: Some(queued.clone()),
        };
        assert_eq!(accepted.answer(), queued);
        assert!(accepted.to_record(true).is_empty());
        let after_data = Reply::new(554, "5.7.1 Message refused: spam");
        let e = Exchange {
            rcpt: vec![ok()],
            data: Some(after_data.clone()),
        };
        assert_eq!(e.answer(), after_data);
        assert_eq!(e.to_record(false), vec![(0, after_data)]);
    }

    #[test]
    fn several_recipients_get_250_when_any_was_accepted() {
        let queued = Reply::new(250, "2.0.0 Ok: queued");
        let full = Reply::new(452, "4.2.2 Mailbox full");
        let e = Exchange {
            rcpt: vec![unknown(), ok(), full.clone()],
            data: Some(queued.clone()),
        };
        assert_eq!(e.answer(), queued);
        assert_eq!(e.to_record(false), vec![(0, unknown())]);
        assert_eq!(e.to_record(true), vec![(0, unknown()), (2, full.clone())]);
        let none = Exchange {
            rcpt: vec![full.clone(), unknown()],
            data: None,
        };
        assert_eq!(none.answer(), full, "the first refusal");
    }

    #[test]
    fn replies_are_rebuilt_as_written() {
        let mut parser = smtp_proto::response::parser::ResponseReceiver::default();
        let wire = b"550 5.1.1 <x@local.test>: Recipient address rejected: User unknown\r\n";
        let r = parser.parse(&mut wire.iter()).unwrap();
        assert_eq!(
            Reply::from_response(&r),
            Reply::new(
                550,
                "5.1.1 <x@local.test>: Recipient address rejected: User unknown"
            )
        );
        let mut parser = smtp_proto::response::parser::ResponseReceiver::default();
        let r = parser.parse(&mut b"451 Try later\r\n".iter()).unwrap();
        assert_eq!(Reply::from_response(&r), Reply::new(451, "Try later"));
    }
}

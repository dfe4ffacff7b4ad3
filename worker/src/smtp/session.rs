//! The bounce MX's side of an SMTP session: MAIL, RCPT (who may be mailed) and DATA (the
//! message read, classified and committed before the answer). The rest of the dialogue is
//! the one the sending relay shares (`super::dialogue`).

use std::borrow::Cow;
use std::time::Instant as StdInstant;

use prometheus::{IntCounter, IntGauge};
use smtp_proto::Request;
use tokio::time::Instant;

use super::Shared;
use super::conn::{Conn, ConnError};
use super::data::{self, Body};
use super::deliver::deliver;
use super::dialogue::{self, End, Io, Server, Session, Settings, Step};
use super::recipients::{self, Recipient, Refused};

#[derive(Default)]
pub struct Transaction {
    recipients: Vec<Recipient>,
}

impl Server for Shared {
    type Transaction = Transaction;
    const BANNER: &'static str = "ESMTP BounceOps bounce MX";
    const HELP: &'static str = "2.0.0 This is a bounce MX; see RFC 5321";

    fn settings(&self) -> &Settings {
        &self.config.server
    }
    fn session_metrics(&self) -> (&IntCounter, &IntGauge) {
        (&self.metrics.sessions, &self.metrics.active)
    }
    fn count(&self, outcome: &str) {
        self.metrics.count(outcome);
    }

    async fn command<S: Io>(
        &self,
        conn: &mut Conn<S>,
        session: &mut Session<Transaction>,
        request: Request<Cow<'_, str>>,
    ) -> Step {
        match request {
            Request::Mail { from } => {
                if let Some(refused) = dialogue::refuse_mail(self, conn, session, from.size) {
                    return refused;
                }
                session.transaction = Some(Transaction::default());
                conn.reply(250, &["2.1.0 Sender OK"]);
            }
            Request::Rcpt { to } => {
                let Some(tx) = session.transaction.as_mut() else {
                    return session.refuse(conn, 503, "5.5.1 Send MAIL first");
                };
                if tx.recipients.len() >= self.config.server.max_recipients {
                    return session.refuse(conn, 452, "4.5.3 Too many recipients");
                }
                match recipients::judge(&self.config, &to.address) {
                    Ok(r) => {
                        if !tx.recipients.iter().any(|x| x.address() == r.address()) {
                            tx.recipients.push(r);
                        }
                        conn.reply(250, &["2.1.5 Recipient OK"]);
                    }
                    Err(Refused::Unknown) => {
                        self.metrics.count("unknown_recipient");
                        return session.refuse(conn, 550, "5.1.1 No such recipient here");
                    }
                    Err(Refused::Forged) => {
                        self.metrics.count("forged_token");
                        crate::warn_throttled!(recipient = %to.address, "VERP token does not verify: refused");
                        return session.refuse(
                            conn,
                            550,
                            "5.7.1 Return path signature does not verify",
                        );
                    }
                }
            }
            Request::Data => {
                let Some(tx) = session.transaction.as_ref() else {
                    return session.refuse(conn, 503, "5.5.1 Send MAIL first");
                };
                if tx.recipients.is_empty() {
                    return session.refuse(conn, 554, "5.5.1 No valid recipients");
                }
                conn.reply(354, &["End data with <CR><LF>.<CR><LF>"]);
                let deadline = Instant::now() + self.config.data_timeout;
                let room = self.memory.hold();
                let max = self.config.server.max_message_bytes;
                let body = match data::read(conn, max, room, deadline).await {
                    Ok(body) => body,
                    Err(ConnError::TimedOut) => {
                        conn.reply(421, &["4.4.2 Timeout during DATA, closing"]);
                        return Step::End(End::Closed);
                    }
                    Err(_) => return Step::End(End::Closed),
                };
                let tx = session.transaction.take().unwrap_or_default();
                let ended = StdInstant::now();
                match body {
                    Body::TooBig => {
                        self.metrics.count("too_big");
                        self.metrics
                            .data_duration
                            .observe(ended.elapsed().as_secs_f64());
                        return session.refuse(
                            conn,
                            552,
                            "5.3.4 Message size exceeds fixed maximum message size",
                        );
                    }
                    Body::NoRoom => {
                        // The sender keeps the message and retries, as for a database down;
                        // the server's state, so not one of the session's errors.
                        self.metrics.count("insufficient_storage");
                        crate::warn_throttled!(
                            max_message_bytes = max,
                            "messages held at once are at their bound; answered 452, the sender retries"
                        );
                        conn.reply(452, &["4.3.1 Insufficient system storage, try again later"]);
                        self.metrics
                            .data_duration
                            .observe(ended.elapsed().as_secs_f64());
                    }
                    Body::Whole(raw, room) => {
                        let d = deliver(&self.ingest, &self.memory, raw, room, tx.recipients).await;
                        self.metrics.count(d.outcome);
                        conn.reply(d.code, &[d.text.as_str()]);
                        // Sent before the histogram counts it: the latency is the sender's.
                        let _ = conn.flush().await;
                        self.metrics
                            .data_duration
                            .observe(ended.elapsed().as_secs_f64());
                    }
                }
            }
            other => return dialogue::answer(self, conn, session, other),
        }
        Step::Next
    }
}

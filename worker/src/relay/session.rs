//! The relay's side of a sender's session: AUTH PLAIN and LOGIN (with logins), MAIL, RCPT
//! and DATA. The rest of the dialogue (the command loop, its bounds, EHLO, STARTTLS, …) is
//! the bounce MX's (`crate::smtp::dialogue`).
//!
//! MAIL and RCPT are answered here (syntax, limits, login): the return path depends on
//! listmonk's `X-Listmonk-Subscriber` and `X-Listmonk-Campaign`, which arrive only in DATA,
//! after the recipients. At DATA the relay reads the header block, then opens the upstream
//! transaction (MAIL FROM the signed VERP address, each RCPT, DATA) and streams the message
//! through; the answer after the final dot carries the upstream's answers.

use std::borrow::Cow;
use std::time::{Duration, Instant as StdInstant};

use prometheus::{IntCounter, IntGauge};
use sha2::{Digest, Sha256};
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, Request};
use tokio::time::Instant;

use super::Shared;
use super::answer::{Exchange, Reply};
use super::message::{self, EndScanner, Headers, MAX_HEADER_BYTES};
use super::record::{self, Stage};
use super::sasl;
use super::upstream::UpstreamError;
use crate::smtp::conn::{Conn, ConnError, Line};
use crate::smtp::dialogue::{self, End, Io, Server, Session, Settings, Step};
use crate::smtp::verp::Verp;

pub struct Transaction {
    /// The sender's reverse path; empty for a null one (`<>`), which stays null.
    from: String,
    rcpts: Vec<String>,
}

impl Shared {
    /// Logins are offered under TLS, or where no certificate is configured at all.
    fn may_log_in(&self, secure: bool) -> bool {
        self.config.credentials.is_some() && (secure || self.config.server.tls.is_none())
    }

    /// Logged in, or no login asked for: the condition of a transaction.
    fn authed(&self, session: &Session<Transaction>) -> bool {
        self.config.credentials.is_none() || session.logged_in
    }
}

impl Server for Shared {
    type Transaction = Transaction;
    const BANNER: &'static str = "ESMTP BounceOps relay";
    const HELP: &'static str = "2.0.0 BounceOps sending relay; see RFC 5321";

    fn settings(&self) -> &Settings {
        &self.config.server
    }
    fn session_metrics(&self) -> (&IntCounter, &IntGauge) {
        (&self.metrics.sessions, &self.metrics.active)
    }
    fn count(&self, outcome: &str) {
        self.metrics.count(outcome);
    }
    fn extensions(&self, session: &Session<Transaction>) -> Option<&'static str> {
        (self.may_log_in(session.secure) && !self.authed(session)).then_some("AUTH PLAIN LOGIN")
    }

    async fn command<S: Io>(
        &self,
        conn: &mut Conn<S>,
        session: &mut Session<Transaction>,
        request: Request<Cow<'_, str>>,
    ) -> Step {
        match request {
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                if self.config.credentials.is_none() {
                    return session.refuse(conn, 502, "5.5.1 No login here");
                }
                if !session.greeted {
                    return session.refuse(conn, 503, "5.5.1 Send EHLO first");
                }
                if self.authed(session) {
                    return session.refuse(conn, 503, "5.5.1 Already logged in");
                }
                if session.transaction.is_some() {
                    return session.refuse(conn, 503, "5.5.1 Not during a transaction");
                }
                if !self.may_log_in(session.secure) {
                    return session.refuse(conn, 538, "5.7.11 Encryption required: STARTTLS first");
                }
                let login = match mechanism {
                    AUTH_PLAIN => {
                        match response(conn, self, session, &initial_response, "").await {
                            Ok(r) => sasl::plain(&r),
                            Err(step) => return step,
                        }
                    }
                    AUTH_LOGIN => {
                        let user =
                            match response(conn, self, session, &initial_response, "Username:")
                                .await
                            {
                                Ok(u) => u,
                                Err(step) => return step,
                            };
                        let password = match response(conn, self, session, "", "Password:").await {
                            Ok(p) => p,
                            Err(step) => return step,
                        };
                        sasl::decode(&user).zip(sasl::decode(&password))
                    }
                    _ => {
                        return session.refuse(conn, 504, "5.5.4 Use AUTH PLAIN or LOGIN");
                    }
                };
                let ok = login.is_some_and(|(user, password)| {
                    self.config
                        .credentials
                        .as_ref()
                        .is_some_and(|c| c.check(&user, &password))
                });
                if !ok {
                    self.metrics.count_login(false);
                    return session.refuse(conn, 535, "5.7.8 Authentication credentials invalid");
                }
                self.metrics.count_login(true);
                session.logged_in = true;
                conn.reply(235, &["2.7.0 Authentication successful"]);
            }
            Request::Mail { from } => {
                // After EHLO, a login comes before anything else.
                if session.greeted && !self.authed(session) {
                    return session.refuse(conn, 530, "5.7.0 Authentication required");
                }
                if let Some(refused) = dialogue::refuse_mail(self, conn, session, from.size) {
                    return refused;
                }
                session.transaction = Some(Transaction {
                    from: from.address.into_owned(),
                    rcpts: Vec::new(),
                });
                conn.reply(250, &["2.1.0 Sender OK"]);
            }
            Request::Rcpt { to } => {
                let Some(tx) = session.transaction.as_mut() else {
                    return session.refuse(conn, 503, "5.5.1 Send MAIL first");
                };
                if tx.rcpts.len() >= self.config.server.max_recipients {
                    return session.refuse(conn, 452, "4.5.3 Too many recipients");
                }
                if to.address.is_empty() || !to.address.contains('@') {
                    return session.refuse(conn, 501, "5.1.3 Bad recipient address syntax");
                }
                tx.rcpts.push(to.address.into_owned());
                conn.reply(250, &["2.1.5 Recipient OK"]);
            }
            Request::Data => {
                let Some(tx) = session.transaction.as_ref() else {
                    return session.refuse(conn, 503, "5.5.1 Send MAIL first");
                };
                if tx.rcpts.is_empty() {
                    return session.refuse(conn, 554, "5.5.1 No valid recipients");
                }
                let tx = session.transaction.take().expect("checked above");
                conn.reply(354, &["End data with <CR><LF>.<CR><LF>"]);
                return relay(conn, self, tx).await;
            }
            other => return dialogue::answer(self, conn, session, other),
        }
        Step::Next
    }
}

/// One answer of a login: `initial` (given with AUTH) when there is one, else the client's
/// line after a `334 prompt` challenge. `Err`: what the session does instead, ended when the
/// client left or took too long, refused (`501`) when it cancelled with `*`.
async fn response<S: Io>(
    conn: &mut Conn<S>,
    shared: &Shared,
    session: &mut Session<Transaction>,
    initial: &str,
    prompt: &str,
) -> Result<String, Step> {
    let answer = match initial {
        "" => challenge(conn, shared, prompt)
            .await
            .ok_or(Step::End(End::Closed))?,
        given => given.to_owned(),
    };
    if answer.trim() == "*" {
        return Err(session.refuse(conn, 501, "5.7.0 Login cancelled"));
    }
    Ok(answer)
}

/// A `334` challenge and the client's line, without its CRLF; `None` when the client left
/// or took too long.
async fn challenge<S: Io>(conn: &mut Conn<S>, shared: &Shared, prompt: &str) -> Option<String> {
    let text = sasl::encode(prompt);
    conn.reply(334, &[text.as_str()]);
    match conn.line(shared.config.server.command_timeout).await {
        Ok(Line::Command(bytes)) => Some(String::from_utf8_lossy(&bytes).trim_end().to_owned()),
        _ => None,
    }
}

/// The next part of the sender's message (what is buffered, or one read), up to and
/// including the end marker when it is in it; the bytes after it stay for the next command.
async fn take<S: Io>(
    conn: &mut Conn<S>,
    scanner: &mut EndScanner,
    timeout: Duration,
) -> Result<(Vec<u8>, bool), ConnError> {
    if conn.input.is_empty() {
        conn.fill(Instant::now() + timeout).await?;
    }
    let mut chunk = std::mem::take(&mut conn.input);
    match scanner.scan(&chunk) {
        Some(n) => {
            conn.input = chunk.split_off(n);
            Ok((chunk, true))
        }
        None => Ok((chunk, false)),
    }
}

/// The sender's message: what has been read of it, and how to read the rest.
struct Incoming<'c, S> {
    conn: &'c mut Conn<S>,
    scanner: EndScanner,
    ended: bool,
    size: usize,
    timeout: Duration,
}

impl<S: Io> Incoming<'_, S> {
    async fn next(&mut self) -> Result<Vec<u8>, ConnError> {
        let (chunk, ended) = take(self.conn, &mut self.scanner, self.timeout).await?;
        self.ended = ended;
        self.size += chunk.len();
        Ok(chunk)
    }

    /// Reads the rest and drops it, a chunk at a time.
    async fn drain(&mut self) -> Result<(), ConnError> {
        while !self.ended {
            self.next().await?;
        }
        Ok(())
    }
}

/// What became of the message upstream.
enum Upshot {
    Answered(Exchange),
    /// The upstream refused the return path itself: about the sender, not a recipient.
    MailRefused(Reply),
    Unavailable(UpstreamError),
    TooBig,
}

/// From the sender's `354` to the answer after its final dot.
async fn relay<S: Io>(conn: &mut Conn<S>, shared: &Shared, tx: Transaction) -> Step {
    let config = &shared.config;
    let mut incoming = Incoming {
        conn,
        scanner: EndScanner::default(),
        ended: false,
        size: 0,
        timeout: config.server.command_timeout,
    };
    // The header block, bounded; a longer one is read as if it ended at the bound.
    let mut head = Vec::new();
    while !incoming.ended && head.len() < MAX_HEADER_BYTES && message::header_end(&head).is_none() {
        match incoming.next().await {
            Ok(chunk) => head.extend_from_slice(&chunk),
            Err(e) => return sender_gone(incoming.conn, e),
        }
    }
    let headers = message::headers(&head);
    let return_path = return_path(shared, &tx, &headers).await;
    let started = StdInstant::now();
    let upshot = match forward(&mut incoming, shared, &return_path, &tx.rcpts, &head).await {
        Ok(u) => u,
        Err(e) => return sender_gone(incoming.conn, e),
    };
    let conn = incoming.conn;
    let reply = match upshot {
        Upshot::Unavailable(e) => {
            crate::warn_throttled!(error = %e, upstream = %config.upstream.host, "upstream unavailable; answered 451");
            shared
                .metrics
                .upstream_errors
                .with_label_values(&[e.kind()])
                .inc();
            shared.metrics.count("upstream_unavailable");
            Reply::new(451, "4.4.1 Upstream server unavailable, try again later")
        }
        Upshot::TooBig => {
            shared.metrics.count("too_big");
            Reply::new(552, "5.3.4 Message size exceeds fixed maximum message size")
        }
        Upshot::MailRefused(r) => {
            crate::warn_throttled!(reply = %r.text(), from = %return_path, "the upstream refused the return path");
            shared.metrics.count("refused");
            r
        }
        Upshot::Answered(exchange) => {
            shared
                .metrics
                .upstream_duration
                .observe(started.elapsed().as_secs_f64());
            answered(shared, &tx, &headers, &head, exchange).await
        }
    };
    let lines: Vec<&str> = reply.lines.iter().map(String::as_str).collect();
    conn.reply(reply.code, &lines);
    Step::Next
}

fn sender_gone<S: Io>(conn: &mut Conn<S>, e: ConnError) -> Step {
    if let ConnError::TimedOut = e {
        conn.reply(421, &["4.4.2 Timeout during DATA, closing"]);
    }
    Step::End(End::Closed)
}

/// The upstream transaction, streaming the sender's message through. Whatever happens
/// upstream, the sender's message is read to its end (so its next command is read as one);
/// an error reading it ends the session. A message cut short leaves the upstream
/// connection without its final dot: closed, so the upstream discards it.
async fn forward<S: Io>(
    incoming: &mut Incoming<'_, S>,
    shared: &Shared,
    from: &str,
    rcpts: &[String],
    head: &[u8],
) -> Result<Upshot, ConnError> {
    let max = shared.config.server.max_message_bytes;
    let pool = &shared.pool;
    let mut lease = match pool.lease().await {
        Ok(l) => l,
        Err(e) => {
            incoming.drain().await?;
            return Ok(Upshot::Unavailable(e));
        }
    };
    let envelope = match lease.envelope(from, rcpts).await {
        Ok(x) => Ok(x),
        // An idle connection the server has closed since: once more, on a new one.
        Err(_) if lease.reused => match pool.reconnect(lease).await {
            Ok(fresh) => {
                lease = fresh;
                lease.envelope(from, rcpts).await
            }
            Err(e) => {
                incoming.drain().await?;
                return Ok(Upshot::Unavailable(e));
            }
        },
        Err(e) => Err(e),
    };
    let (mail, rcpt, pipelined_data) = match envelope {
        Ok(x) => x,
        Err(e) => {
            incoming.drain().await?;
            return Ok(Upshot::Unavailable(e));
        }
    };
    // A pipelined DATA that the server agreed to (354) must get a message, or the
    // connection cannot be used again: closed instead of reset in the refusals below.
    let waiting = pipelined_data.as_ref().is_some_and(|d| d.code == 354);
    if !mail.positive() {
        incoming.drain().await?;
        lease.end_transaction(waiting).await;
        return Ok(Upshot::MailRefused(mail));
    }
    if rcpt.len() != rcpts.len() {
        incoming.drain().await?;
        return Ok(Upshot::Unavailable(UpstreamError::Protocol(format!(
            "{} answers to {} recipients",
            rcpt.len(),
            rcpts.len()
        ))));
    }
    if !rcpt.iter().any(Reply::positive) {
        incoming.drain().await?;
        lease.end_transaction(waiting).await;
        return Ok(Upshot::Answered(Exchange { rcpt, data: None }));
    }
    let data = match pipelined_data {
        Some(d) => Ok(d),
        None => lease.data().await,
    };
    match data {
        Err(e) => {
            incoming.drain().await?;
            return Ok(Upshot::Unavailable(e));
        }
        Ok(refused) if refused.code != 354 => {
            incoming.drain().await?;
            lease.reset_and_release().await;
            return Ok(Upshot::Answered(Exchange {
                rcpt,
                data: Some(refused),
            }));
        }
        Ok(_) => {}
    }
    if incoming.size > max {
        incoming.drain().await?;
        return Ok(Upshot::TooBig);
    }
    if let Err(e) = lease.write(head).await {
        incoming.drain().await?;
        return Ok(Upshot::Unavailable(e));
    }
    while !incoming.ended {
        let chunk = incoming.next().await?;
        if incoming.size > max {
            incoming.drain().await?;
            return Ok(Upshot::TooBig);
        }
        if let Err(e) = lease.write(&chunk).await {
            incoming.drain().await?;
            return Ok(Upshot::Unavailable(e));
        }
    }
    match lease.finish().await {
        Ok(answer) => {
            lease.release();
            Ok(Upshot::Answered(Exchange {
                rcpt,
                data: Some(answer),
            }))
        }
        Err(e) => Ok(Upshot::Unavailable(e)),
    }
}

/// The signed VERP address for the message: listmonk's subscriber and campaign, else the
/// subscriber whose address the one recipient is; a null reverse path stays null (it is
/// a report, which must not bounce), and mail to no known subscriber keeps the sender's.
async fn return_path(shared: &Shared, tx: &Transaction, headers: &Headers) -> String {
    if tx.from.is_empty() {
        return String::new();
    }
    let config = &shared.config;
    let sign = |verp| {
        config
            .keys
            .address(&config.verp_prefix, &config.return_path_domain, verp)
    };
    if let Some(subscriber) = headers.subscriber {
        return sign(Verp {
            subscriber,
            campaign: headers.campaign,
        });
    }
    if let [rcpt] = tx.rcpts.as_slice() {
        let lookup = shared.store.subscriber_uuid_by_email(rcpt);
        match tokio::time::timeout(Duration::from_secs(2), lookup).await {
            Ok(Ok(Some(subscriber))) => {
                return sign(Verp {
                    subscriber,
                    campaign: None,
                });
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "subscriber lookup failed; return path kept"),
            Err(_) => tracing::debug!("subscriber lookup timed out; return path kept"),
        }
    }
    tx.from.clone()
}

/// The upstream answered: count, record the refusals, and choose the sender's answer.
async fn answered(
    shared: &Shared,
    tx: &Transaction,
    headers: &Headers,
    head: &[u8],
    exchange: Exchange,
) -> Reply {
    let metrics = &shared.metrics;
    for r in exchange.finals() {
        metrics.recipients.with_label_values(&[r.class()]).inc();
    }
    let delivered = exchange.delivered();
    let refused: Vec<_> = exchange
        .to_record(shared.config.record_temporary_failures)
        .into_iter()
        .map(|(i, reply)| {
            let stage = match exchange.rcpt[i].positive() {
                true => Stage::Data,
                false => Stage::Rcpt,
            };
            (i, reply, stage)
        })
        .collect();
    let answer = exchange.answer();
    if !refused.is_empty() {
        let digest: String = Sha256::digest(head)
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let events = record::events(headers, &digest, &tx.rcpts, &refused);
        let count = events.len() as u64;
        match shared.ingest.record(events).await {
            Ok(_) => metrics.recorded.inc_by(count),
            // Delivered to none: the sender tries again later and the refusal is recorded
            // then (the same identity, so once). Delivered to some: a retry would send them
            // the message twice, so the answer stands and the loss is loud.
            Err(e) if !delivered => {
                crate::warn_throttled!(error = %e, "a refusal could not be recorded; answered 451 so the sender retries");
                metrics.count("temporary_failure");
                return Reply::new(451, "4.3.0 Refusal not recorded, try again later");
            }
            Err(e) => {
                crate::error_throttled!(error = %e, refused = count, "refusals not recorded: the message reached other recipients");
                metrics.count("not_recorded");
            }
        }
    }
    metrics.count(if delivered { "relayed" } else { "refused" });
    answer
}

//! One SMTP session: the command sequence of RFC 5321 §4.1.4, with the extensions the
//! server advertises (SIZE, PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS when a
//! certificate is configured). Commands are parsed by smtp-proto; every refusal is a
//! reply with an enhanced status code and counts toward `maxErrors`.

use std::borrow::Cow;
use std::time::Instant as StdInstant;

use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::Shared;
use super::conn::{Conn, ConnError, Line};
use super::data::{self, Body};
use super::deliver::deliver;
use super::recipients::{self, Recipient, Refused};

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// QUIT, a timeout, too many errors, shutdown, or the client left.
    Closed,
    /// STARTTLS accepted: the caller wraps the connection in TLS and talks on.
    StartTls,
}

#[derive(Default)]
struct Transaction {
    recipients: Vec<Recipient>,
}

struct State {
    greeted: bool,
    transaction: Option<Transaction>,
    errors: u32,
}

/// Talks on `conn` until the session ends. `secure`: already under TLS.
pub async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    shared: &Shared,
    secure: bool,
) -> End {
    let mut state = State {
        greeted: false,
        transaction: None,
        errors: 0,
    };
    let mut stop = shared.stop.clone();
    loop {
        let line = tokio::select! {
            line = conn.line(shared.config.command_timeout) => line,
            _ = super::stopped(&mut stop) => {
                conn.reply(421, &["4.3.2 Shutting down, try again later"]);
                let _ = conn.flush().await;
                return End::Closed;
            }
        };
        let line = match line {
            Ok(line) => line,
            Err(ConnError::TimedOut) => {
                conn.reply(421, &["4.4.2 Timeout waiting for a command, closing"]);
                let _ = conn.flush().await;
                return End::Closed;
            }
            Err(_) => return End::Closed,
        };
        let step = match line {
            Line::TooLong => refuse(conn, &mut state, shared, 500, "5.5.2 Line too long"),
            Line::BareLf => refuse(
                conn,
                &mut state,
                shared,
                500,
                "5.5.2 Bare LF: lines end with CRLF",
            ),
            Line::Command(bytes) if bytes.contains(&0) => {
                refuse(conn, &mut state, shared, 500, "5.5.2 NUL in a command")
            }
            Line::Command(bytes) => match Request::parse(&mut bytes.iter()) {
                Ok(request) => command(conn, &mut state, shared, secure, request).await,
                Err(e) => {
                    let (code, text) = parse_error(&e);
                    refuse(conn, &mut state, shared, code, &text)
                }
            },
        };
        match step {
            Step::Next => {}
            Step::End(end) => {
                let _ = conn.flush().await;
                return end;
            }
        }
    }
}

enum Step {
    Next,
    End(End),
}

pub fn parse_error(e: &ParseError) -> (u16, Cow<'static, str>) {
    match e {
        ParseError::UnknownCommand => (500, "5.5.2 Command unrecognized".into()),
        ParseError::InvalidSenderAddress => (501, "5.1.7 Bad sender address syntax".into()),
        ParseError::InvalidRecipientAddress => (501, "5.1.3 Bad recipient address syntax".into()),
        ParseError::SyntaxError { syntax } => (501, format!("5.5.4 Syntax: {syntax}").into()),
        ParseError::InvalidParameter { param } => {
            (501, format!("5.5.4 Invalid parameter {param}").into())
        }
        ParseError::UnsupportedParameter { param } => {
            let param: String = param
                .chars()
                .take(32)
                .filter(char::is_ascii_graphic)
                .collect();
            (555, format!("5.5.4 Unsupported parameter {param}").into())
        }
        _ => (500, "5.5.2 Syntax error".into()),
    }
}

/// Queues a refusal; past `maxErrors` refusals the session ends with `421`.
fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    state: &mut State,
    shared: &Shared,
    code: u16,
    text: &str,
) -> Step {
    conn.reply(code, &[text]);
    state.errors += 1;
    if state.errors >= shared.config.max_errors {
        conn.reply(421, &["4.7.0 Too many errors, closing"]);
        return Step::End(End::Closed);
    }
    Step::Next
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    state: &mut State,
    shared: &Shared,
    secure: bool,
    request: Request<Cow<'_, str>>,
) -> Step {
    let config = &shared.config;
    let host = config.hostname.as_str();
    match request {
        Request::Ehlo { .. } => {
            state.greeted = true;
            state.transaction = None;
            let size = format!("SIZE {}", config.max_message_bytes);
            let mut lines = vec![
                host,
                size.as_str(),
                "PIPELINING",
                "8BITMIME",
                "ENHANCEDSTATUSCODES",
            ];
            if config.tls.is_some() && !secure {
                lines.push("STARTTLS");
            }
            conn.reply(250, &lines);
        }
        Request::Helo { .. } => {
            state.greeted = true;
            state.transaction = None;
            conn.reply(250, &[host]);
        }
        Request::Mail { from } => {
            if !state.greeted {
                return refuse(conn, state, shared, 503, "5.5.1 Send EHLO first");
            }
            if state.transaction.is_some() {
                return refuse(conn, state, shared, 503, "5.5.1 Nested MAIL command");
            }
            if from.size > config.max_message_bytes {
                shared.metrics.count("too_big");
                return refuse(
                    conn,
                    state,
                    shared,
                    552,
                    "5.3.4 Message size exceeds fixed maximum message size",
                );
            }
            state.transaction = Some(Transaction::default());
            conn.reply(250, &["2.1.0 Sender OK"]);
        }
        Request::Rcpt { to } => {
            let Some(tx) = state.transaction.as_mut() else {
                return refuse(conn, state, shared, 503, "5.5.1 Send MAIL first");
            };
            if tx.recipients.len() >= config.max_recipients {
                return refuse(conn, state, shared, 452, "4.5.3 Too many recipients");
            }
            match recipients::judge(config, &to.address) {
                Ok(r) => {
                    if !tx.recipients.iter().any(|x| x.address() == r.address()) {
                        tx.recipients.push(r);
                    }
                    conn.reply(250, &["2.1.5 Recipient OK"]);
                }
                Err(Refused::Unknown) => {
                    shared.metrics.count("unknown_recipient");
                    return refuse(conn, state, shared, 550, "5.1.1 No such recipient here");
                }
                Err(Refused::Forged) => {
                    shared.metrics.count("forged_token");
                    tracing::warn!(recipient = %to.address, "VERP token does not verify: refused");
                    return refuse(
                        conn,
                        state,
                        shared,
                        550,
                        "5.7.1 Return path signature does not verify",
                    );
                }
            }
        }
        Request::Data => {
            let Some(tx) = state.transaction.as_ref() else {
                return refuse(conn, state, shared, 503, "5.5.1 Send MAIL first");
            };
            if tx.recipients.is_empty() {
                return refuse(conn, state, shared, 554, "5.5.1 No valid recipients");
            }
            conn.reply(354, &["End data with <CR><LF>.<CR><LF>"]);
            let deadline = Instant::now() + config.data_timeout;
            let body = match data::read(conn, config.max_message_bytes, deadline).await {
                Ok(body) => body,
                Err(ConnError::TimedOut) => {
                    conn.reply(421, &["4.4.2 Timeout during DATA, closing"]);
                    return Step::End(End::Closed);
                }
                Err(_) => return Step::End(End::Closed),
            };
            let tx = state.transaction.take().unwrap_or_default();
            let ended = StdInstant::now();
            match body {
                Body::TooBig => {
                    shared.metrics.count("too_big");
                    shared
                        .metrics
                        .data_duration
                        .observe(ended.elapsed().as_secs_f64());
                    return refuse(
                        conn,
                        state,
                        shared,
                        552,
                        "5.3.4 Message size exceeds fixed maximum message size",
                    );
                }
                Body::Whole(raw) => {
                    let d = deliver(&shared.ingest, &shared.classifiers, raw, tx.recipients).await;
                    shared.metrics.count(d.outcome);
                    conn.reply(d.code, &[d.text.as_str()]);
                    // Sent before the histogram counts it: the latency is the sender's.
                    let _ = conn.flush().await;
                    shared
                        .metrics
                        .data_duration
                        .observe(ended.elapsed().as_secs_f64());
                }
            }
        }
        Request::Rset => {
            state.transaction = None;
            conn.reply(250, &["2.0.0 OK"]);
        }
        Request::Noop { .. } => conn.reply(250, &["2.0.0 OK"]),
        Request::Quit => {
            conn.reply(221, &["2.0.0 Bye"]);
            return Step::End(End::Closed);
        }
        Request::Vrfy { .. } => conn.reply(252, &["2.5.2 Cannot VRFY; send the message"]),
        Request::Help { .. } => conn.reply(214, &["2.0.0 This is a bounce MX; see RFC 5321"]),
        Request::StartTls => {
            if config.tls.is_none() {
                return refuse(conn, state, shared, 502, "5.5.1 STARTTLS not offered");
            }
            if secure {
                return refuse(conn, state, shared, 503, "5.5.1 TLS already active");
            }
            // RFC 3207 §4.2 / CVE-2011-0411: commands pipelined after STARTTLS were sent in
            // clear text; they are dropped, never run under TLS.
            conn.input.clear();
            conn.reply(220, &["2.0.0 Ready to start TLS"]);
            return Step::End(End::StartTls);
        }
        Request::Lhlo { .. }
        | Request::Bdat { .. }
        | Request::Auth { .. }
        | Request::Expn { .. }
        | Request::Etrn { .. }
        | Request::Atrn { .. }
        | Request::Burl { .. } => {
            return refuse(conn, state, shared, 502, "5.5.1 Command not implemented");
        }
    }
    Step::Next
}

//! What the bounce MX and the sending relay share as SMTP servers: a session from its
//! greeting to its end (STARTTLS included), the command loop of RFC 5321 §4.1.4 with its
//! bounds (line length, a timeout per command, `maxErrors` refusals, shutdown), and the
//! answers to the commands that mean the same on both (EHLO, HELO, RSET, NOOP, QUIT, VRFY,
//! HELP, STARTTLS, and those neither implements). Each server answers MAIL, RCPT, DATA
//! (and the relay AUTH) itself, through [`Server::command`].

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;

use super::conn::{Conn, ConnError, Line};
use super::listen;

/// A connection a session can talk on: plain TCP, or TLS after STARTTLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// QUIT, a timeout, too many errors, shutdown, or the client left.
    Closed,
    /// STARTTLS accepted: the connection goes on under TLS.
    StartTls,
}

/// What a command leaves the session to do next.
pub enum Step {
    Next,
    End(End),
}

/// One session's state. `T`: what a MAIL command opens, until DATA or RSET ends it.
pub struct Session<T> {
    pub greeted: bool,
    pub transaction: Option<T>,
    /// Already under TLS.
    pub secure: bool,
    /// AUTH succeeded (the relay's logins).
    pub logged_in: bool,
    errors: u32,
    max_errors: u32,
}

impl<T> Session<T> {
    /// Queues a refusal; past `maxErrors` refusals the session ends with `421`.
    pub fn refuse<S: Io>(&mut self, conn: &mut Conn<S>, code: u16, text: &str) -> Step {
        conn.reply(code, &[text]);
        self.errors += 1;
        if self.errors >= self.max_errors {
            conn.reply(421, &["4.7.0 Too many errors, closing"]);
            return Step::End(End::Closed);
        }
        Step::Next
    }
}

/// What every server built on this dialogue is configured with.
#[derive(Clone)]
pub struct Settings {
    /// The name in the greeting and the EHLO answer.
    pub hostname: String,
    /// The longest wait for a command.
    pub command_timeout: Duration,
    /// Refused commands that end a session.
    pub max_errors: u32,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub max_sessions: usize,
    /// STARTTLS is offered when present.
    pub tls: Option<Arc<ServerConfig>>,
}

/// A server built on this dialogue: its settings, and the commands it answers itself.
pub trait Server: Sync {
    type Transaction: Send;

    /// What follows the host name in the greeting (`ESMTP …`).
    const BANNER: &'static str;
    /// The answer to HELP.
    const HELP: &'static str;

    fn settings(&self) -> &Settings;
    /// `bounceops_*_sessions_total` and `bounceops_*_sessions_active`.
    fn session_metrics(&self) -> (&IntCounter, &IntGauge);
    /// Counts a message's outcome (`bounceops_*_messages_total{outcome}`).
    fn count(&self, outcome: &str);
    /// EHLO keywords beyond the shared ones (the relay's AUTH).
    fn extensions(&self, _session: &Session<Self::Transaction>) -> Option<&'static str> {
        None
    }
    /// Answers `request`; what the server does not answer itself goes to [`answer`].
    fn command<S: Io>(
        &self,
        conn: &mut Conn<S>,
        session: &mut Session<Self::Transaction>,
        request: Request<Cow<'_, str>>,
    ) -> impl Future<Output = Step> + Send;
}

/// Counts the session as active while it lives, even if it panics.
struct Active(IntGauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accepts sessions on `listener` until `stop` turns true, at most `maxSessions` at once,
/// then waits up to `grace` for those in progress. `what` names the server in logs.
pub async fn serve<V: Server + Send + 'static>(
    listener: TcpListener,
    server: Arc<V>,
    stop: watch::Receiver<bool>,
    grace: Duration,
    what: &'static str,
) {
    let max = server.settings().max_sessions;
    listen::accept(listener, max, stop.clone(), grace, what, move |tcp| {
        let (server, stop) = (server.clone(), stop.clone());
        async move { session(tcp, server.as_ref(), stop).await }
    })
    .await;
}

/// One connection, from the greeting to its end; after STARTTLS, the same under TLS.
/// `stop` turns true at shutdown: a session waiting for a command answers `421` and ends.
async fn session<V: Server>(tcp: TcpStream, server: &V, stop: watch::Receiver<bool>) {
    let (sessions, active) = server.session_metrics();
    sessions.inc();
    active.inc();
    let _active = Active(active.clone());
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn::new(tcp);
    let greeting = format!("{} {}", server.settings().hostname, V::BANNER);
    conn.reply(220, &[greeting.as_str()]);
    if converse(&mut conn, server, stop.clone(), false).await != End::StartTls {
        return;
    }
    let Some(tls) = server.settings().tls.clone() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let handshake = tokio::time::timeout(server.settings().command_timeout, async move {
        conn.flush().await.ok()?;
        acceptor.accept(conn.io).await.ok()
    })
    .await;
    match handshake {
        Ok(Some(tls)) => {
            let mut conn = Conn::new(tls);
            converse(&mut conn, server, stop, true).await;
        }
        _ => tracing::debug!("STARTTLS handshake failed or timed out"),
    }
}

/// Resolves once `stop` turns true (or its sender is gone). Not `wait_for` in `select!`
/// directly: its guard is not `Send`.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Talks on `conn` until the session ends. `secure`: already under TLS.
async fn converse<S: Io, V: Server>(
    conn: &mut Conn<S>,
    server: &V,
    mut stop: watch::Receiver<bool>,
    secure: bool,
) -> End {
    let mut session = Session {
        greeted: false,
        transaction: None,
        secure,
        logged_in: false,
        errors: 0,
        max_errors: server.settings().max_errors,
    };
    loop {
        let line = tokio::select! {
            line = conn.line(server.settings().command_timeout) => line,
            _ = stopped(&mut stop) => {
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
            Line::TooLong => session.refuse(conn, 500, "5.5.2 Line too long"),
            Line::BareLf => session.refuse(conn, 500, "5.5.2 Bare LF: lines end with CRLF"),
            Line::Command(bytes) if bytes.contains(&0) => {
                session.refuse(conn, 500, "5.5.2 NUL in a command")
            }
            Line::Command(bytes) => match Request::parse(&mut bytes.iter()) {
                Ok(request) => server.command(conn, &mut session, request).await,
                Err(e) => {
                    let (code, text) = parse_error(&e);
                    session.refuse(conn, code, &text)
                }
            },
        };
        if let Step::End(end) = step {
            let _ = conn.flush().await;
            return end;
        }
    }
}

fn parse_error(e: &ParseError) -> (u16, Cow<'static, str>) {
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

/// The checks a MAIL command passes on both servers before it opens a transaction: EHLO
/// first, no MAIL within a transaction, the declared SIZE within bounds. `Some`: refused.
pub fn refuse_mail<S: Io, V: Server>(
    server: &V,
    conn: &mut Conn<S>,
    session: &mut Session<V::Transaction>,
    declared_size: usize,
) -> Option<Step> {
    if !session.greeted {
        return Some(session.refuse(conn, 503, "5.5.1 Send EHLO first"));
    }
    if session.transaction.is_some() {
        return Some(session.refuse(conn, 503, "5.5.1 Nested MAIL command"));
    }
    if declared_size > server.settings().max_message_bytes {
        server.count("too_big");
        return Some(session.refuse(
            conn,
            552,
            "5.3.4 Message size exceeds fixed maximum message size",
        ));
    }
    None
}

/// The answers both servers give alike.
pub fn answer<S: Io, V: Server>(
    server: &V,
    conn: &mut Conn<S>,
    session: &mut Session<V::Transaction>,
    request: Request<Cow<'_, str>>,
) -> Step {
    match request {
        Request::Ehlo { .. } => {
            session.greeted = true;
            session.transaction = None;
            let size = format!("SIZE {}", server.settings().max_message_bytes);
            let mut lines = vec![
                server.settings().hostname.as_str(),
                size.as_str(),
                "PIPELINING",
                "8BITMIME",
                "ENHANCEDSTATUSCODES",
            ];
            if server.settings().tls.is_some() && !session.secure {
                lines.push("STARTTLS");
            }
            if let Some(more) = server.extensions(session) {
                lines.push(more);
            }
            conn.reply(250, &lines);
        }
        Request::Helo { .. } => {
            session.greeted = true;
            session.transaction = None;
            conn.reply(250, &[server.settings().hostname.as_str()]);
        }
        Request::Rset => {
            session.transaction = None;
            conn.reply(250, &["2.0.0 OK"]);
        }
        Request::Noop { .. } => conn.reply(250, &["2.0.0 OK"]),
        Request::Quit => {
            conn.reply(221, &["2.0.0 Bye"]);
            return Step::End(End::Closed);
        }
        Request::Vrfy { .. } => conn.reply(252, &["2.5.2 Cannot VRFY; send the message"]),
        Request::Help { .. } => conn.reply(214, &[V::HELP]),
        Request::StartTls => {
            if server.settings().tls.is_none() {
                return session.refuse(conn, 502, "5.5.1 STARTTLS not offered");
            }
            if session.secure {
                return session.refuse(conn, 503, "5.5.1 TLS already active");
            }
            // RFC 3207 §4.2 / CVE-2011-0411: commands pipelined after STARTTLS were sent in
            // clear text; they are dropped, never run under TLS.
            conn.input.clear();
            conn.reply(220, &["2.0.0 Ready to start TLS"]);
            return Step::End(End::StartTls);
        }
        // Each server answers MAIL, RCPT and DATA itself; AUTH comes here from the bounce
        // MX, which has no logins.
        Request::Mail { .. }
        | Request::Rcpt { .. }
        | Request::Data
        | Request::Auth { .. }
        | Request::Lhlo { .. }
        | Request::Bdat { .. }
        | Request::Expn { .. }
        | Request::Etrn { .. }
        | Request::Atrn { .. }
        | Request::Burl { .. } => {
            return session.refuse(conn, 502, "5.5.1 Command not implemented");
        }
    }
    Step::Next
}

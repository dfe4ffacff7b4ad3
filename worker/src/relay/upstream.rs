//! The relay's connections to the upstream SMTP server: a pool of at most `poolSize`, each
//! logged in once and reused for message after message.
//!
//! Connecting, TLS, EHLO, AUTH and each command's reply are Stalwart's mail-send
//! (`SmtpClient`: its `cmd`/`cmds` give every reply, so each recipient's answer can go back
//! to the sender, which lettre's transport does not expose). The message itself is written
//! by hand: mail-send's `data()` wants the whole message in memory and dot-stuffs it, while
//! the relay streams the sender's bytes, already stuffed, unchanged (`super::message`).

use std::sync::Mutex;
use std::time::Instant;

use bounceops_api::TlsMode;
use mail_send::SmtpClient;
use smtp_proto::{EXT_PIPELINING, EXT_START_TLS};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_rustls::TlsConnector;

use super::answer::Reply;
use super::config::Upstream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why the upstream could not be used: the sender is told `451 4.4.1`.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("login refused: {0}")]
    Auth(String),
    #[error("no answer within the timeout")]
    Timeout,
    #[error("connection lost: {0}")]
    Io(String),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl UpstreamError {
    /// The `kind` label of `bounceops_relay_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Tls(_) => "tls",
            UpstreamError::Auth(_) => "auth",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Io(_) => "io",
            UpstreamError::Protocol(_) => "protocol",
        }
    }
}

/// Every value of the `kind` label.
pub const ERROR_KINDS: [&str; 6] = ["connect", "tls", "auth", "timeout", "io", "protocol"];

impl From<mail_send::Error> for UpstreamError {
    fn from(e: mail_send::Error) -> Self {
        use mail_send::Error as E;
        match e {
            E::Io(e) => UpstreamError::Io(e.to_string()),
            E::Timeout => UpstreamError::Timeout,
            E::Tls(e) => UpstreamError::Tls(e.to_string()),
            E::InvalidTLSName => UpstreamError::Tls("the host is not a valid TLS name".into()),
            E::MissingStartTls => UpstreamError::Tls("STARTTLS is not offered".into()),
            E::Auth(_)
            | E::AuthenticationFailed(_)
            | E::UnsupportedAuthMechanism
            | E::MissingCredentials => UpstreamError::Auth(e.to_string()),
            other => UpstreamError::Protocol(other.to_string()),
        }
    }
}

/// One logged-in connection.
pub struct Connection {
    client: SmtpClient<Box<dyn Io>>,
    pipelining: bool,
}

/// The pool: idle connections, and a bound on those open.
pub struct Pool {
    config: Upstream,
    helo: String,
    idle: Mutex<Vec<Connection>>,
    slots: Semaphore,
}

/// A connection taken from the pool; given back by [`Lease::release`], closed when dropped.
pub struct Lease<'a> {
    pool: &'a Pool,
    pub conn: Connection,
    /// From the idle list: it may have been closed by the server since.
    pub reused: bool,
    _slot: SemaphorePermit<'a>,
}

impl Pool {
    pub fn new(config: Upstream, helo: String) -> Pool {
        let slots = Semaphore::new(config.pool_size);
        Pool {
            config,
            helo,
            idle: Mutex::new(Vec::new()),
            slots,
        }
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.config.timeout
    }

    /// A connection, idle or new; waiting for a free one counts toward the timeout.
    pub async fn lease(&self) -> Result<Lease<'_>, UpstreamError> {
        let slot = tokio::time::timeout(self.config.timeout, self.slots.acquire())
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .expect("the pool's semaphore is never closed");
        let idle = self.idle.lock().expect("not poisoned").pop();
        let (conn, reused) = match idle {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        Ok(Lease {
            pool: self,
            conn,
            reused,
            _slot: slot,
        })
    }

    /// A new connection in place of a leased one that turned out dead.
    pub async fn reconnect<'a>(&'a self, lease: Lease<'a>) -> Result<Lease<'a>, UpstreamError> {
        let Lease { _slot, .. } = lease;
        let conn = self.connect().await?;
        Ok(Lease {
            pool: self,
            conn,
            reused: false,
            _slot,
        })
    }

    async fn connect(&self) -> Result<Connection, UpstreamError> {
        let c = &self.config;
        let timeout = c.timeout;
        let within = |f| async move {
            tokio::time::timeout(timeout, f)
                .await
                .map_err(|_| UpstreamError::Timeout)
        };
        let tcp = within(TcpStream::connect((c.host.as_str(), c.port)))
            .await?
            .map_err(UpstreamError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let plain = SmtpClient {
            stream: tcp,
            timeout,
        };
        let connector = TlsConnector::from(c.tls_client.clone());
        let mut client: SmtpClient<Box<dyn Io>> = match c.tls {
            TlsMode::Tls => {
                let mut tls = plain.into_tls(&connector, &c.host).await?;
                greeting(&mut tls).await?;
                boxed(tls)
            }
            TlsMode::Starttls => {
                let mut plain = plain;
                greeting(&mut plain).await?;
                let caps = plain.ehlo(&self.helo).await?;
                if !caps.has_capability(EXT_START_TLS) {
                    return Err(UpstreamError::Tls(
                        "the server does not offer STARTTLS (spec.relay.upstream.tls)".into(),
                    ));
                }
                boxed(plain.start_tls(&connector, &c.host).await?)
            }
            TlsMode::None => {
                let mut plain = plain;
                greeting(&mut plain).await?;
                boxed(plain)
            }
        };
        let caps = client.ehlo(&self.helo).await?;
        if let Some((user, password)) = &c.login {
            let login = mail_send::Credentials::new(user.as_str(), password.as_str());
            client.authenticate(&login, &caps).await?;
        }
        Ok(Connection {
            client,
            pipelining: caps.has_capability(EXT_PIPELINING),
        })
    }
}

async fn greeting<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
) -> Result<(), UpstreamError> {
    let timeout = client.timeout;
    let reply = tokio::time::timeout(timeout, client.read())
        .await
        .map_err(|_| UpstreamError::Timeout)??;
    match reply.code {
        220 => Ok(()),
        _ => Err(UpstreamError::Protocol(format!(
            "greeting {}",
            Reply::from_response(&reply).text()
        ))),
    }
}

fn boxed<T: Io + 'static>(c: SmtpClient<T>) -> SmtpClient<Box<dyn Io>> {
    SmtpClient {
        stream: Box::new(c.stream),
        timeout: c.timeout,
    }
}

impl Lease<'_> {
    /// MAIL FROM and each RCPT TO: the MAIL answer and each recipient's. With PIPELINING
    /// (RFC 2920) DATA goes in the same group, the last command, and its answer comes back
    /// too (`Some`): one round trip for the whole envelope. The server refuses that DATA by
    /// itself when no recipient was accepted.
    pub async fn envelope(
        &mut self,
        from: &str,
        rcpts: &[String],
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), UpstreamError> {
        let mail = format!("MAIL FROM:<{from}>\r\n");
        let rcpt_cmds = rcpts.iter().map(|r| format!("RCPT TO:<{r}>\r\n"));
        let client = &mut self.conn.client;
        if self.conn.pipelining {
            // One write for the whole group, not mail-send's `cmds` (a write per command):
            // separate small packets make a server that answers each at once send its
            // replies in separate packets too, and one of them can then wait for a delayed
            // ACK (40 ms stalls measured against smtp-sink).
            let mut group = mail;
            rcpt_cmds.for_each(|c| group.push_str(&c));
            group.push_str("DATA\r\n");
            let expected = rcpts.len() + 2;
            let timeout = client.timeout;
            let replies = tokio::time::timeout(timeout, async {
                client
                    .stream
                    .write_all(group.as_bytes())
                    .await
                    .map_err(mail_send::Error::Io)?;
                client.stream.flush().await.map_err(mail_send::Error::Io)?;
                client.read_many(expected).await
            })
            .await
            .map_err(|_| UpstreamError::Timeout)??;
            let mut replies: Vec<Reply> = replies.iter().map(Reply::from_response).collect();
            if replies.len() != rcpts.len() + 2 {
                return Err(UpstreamError::Protocol(format!(
                    "{} answers to {} pipelined commands",
                    replies.len(),
                    rcpts.len() + 2
                )));
            }
            let data = replies.pop();
            let mail = replies.remove(0);
            return Ok((mail, replies, data));
        }
        let mail = Reply::from_response(&client.cmd(mail).await?);
        let mut replies = Vec::with_capacity(rcpts.len());
        if mail.positive() {
            for cmd in rcpt_cmds {
                replies.push(Reply::from_response(&client.cmd(cmd).await?));
            }
        }
        Ok((mail, replies, None))
    }

    /// `DATA` (without PIPELINING): `354` when the server waits for the message, else its
    /// refusal.
    pub async fn data(&mut self) -> Result<Reply, UpstreamError> {
        Ok(Reply::from_response(
            &self.conn.client.cmd(b"DATA\r\n").await?,
        ))
    }

    /// Part of the message, as the sender wrote it.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        let client = &mut self.conn.client;
        tokio::time::timeout(client.timeout, client.stream.write_all(bytes))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|e| UpstreamError::Io(e.to_string()))
    }

    /// The answer to the message, once its final dot is written.
    pub async fn finish(&mut self) -> Result<Reply, UpstreamError> {
        let client = &mut self.conn.client;
        let timeout = client.timeout;
        let reply = tokio::time::timeout(timeout, async {
            client.stream.flush().await.map_err(mail_send::Error::Io)?;
            client.read().await
        })
        .await
        .map_err(|_| UpstreamError::Timeout)??;
        Ok(Reply::from_response(&reply))
    }

    /// RSET after a transaction that did not reach its end (RFC 5321 §4.1.1.5); the
    /// connection goes back to the pool when the server agrees.
    pub async fn reset_and_release(mut self) {
        let started = Instant::now();
        match self.conn.client.cmd(b"RSET\r\n").await {
            Ok(r) if r.code == 250 => self.release(),
            _ => tracing::debug!(elapsed = ?started.elapsed(), "upstream RSET failed; closed"),
        }
    }

    /// After a refused transaction: reset and back to the pool, or closed when the server
    /// is `waiting` for a message (a pipelined DATA it agreed to).
    pub async fn end_transaction(self, waiting: bool) {
        if !waiting {
            self.reset_and_release().await;
        }
    }

    /// Back to the pool, for the next message.
    pub fn release(self) {
        let Lease { pool, conn, .. } = self;
        pool.idle.lock().expect("not poisoned").push(conn);
    }
}

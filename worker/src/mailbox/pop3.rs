//! A POP3 client session (RFC 1939, STLS from RFC 2595): USER/PASS, UIDL, RETR, DELE,
//! QUIT, over plain TCP, implicit TLS or STLS.
//!
//! Written here rather than taken from crates.io: the one maintained POP3 client crate
//! (async-pop 1.x) runs only on async-std with native-tls or the deprecated async-rustls,
//! while this worker runs on tokio with tokio-rustls. The protocol subset a bounce scanner
//! needs is a handful of line commands.
//!
//! Deletion in POP3 happens only at a successful QUIT: a session that drops before it
//! deletes nothing, which is what makes "delete only after commit" safe here.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufStream};

use super::net::{self, Stream, timed};
use super::{Listed, MailboxConfig, ScanError};
use bounceops_api::TlsMode;

pub struct Pop3 {
    io: BufStream<Stream>,
}

impl Pop3 {
    pub async fn open(cfg: &MailboxConfig) -> Result<Pop3, ScanError> {
        let tcp = net::connect(&cfg.host, cfg.port).await?;
        let tls = |tcp| super::tls::handshake(tcp, &cfg.host, cfg.tls_skip_verify);
        let mut session = match cfg.tls {
            TlsMode::None => Pop3::greeted(Box::new(tcp)).await?,
            TlsMode::Tls => {
                let stream = tls(tcp).await.map_err(ScanError::Connect)?;
                Pop3::greeted(Box::new(stream)).await?
            }
            TlsMode::Starttls => {
                let mut plain = BufStream::new(tcp);
                status(&mut plain, "greeting").await?;
                send(&mut plain, "STLS", "STLS").await?;
                status(&mut plain, "STLS")
                    .await
                    .map_err(|e| ScanError::Connect(format!("the server refused STLS: {e}")))?;
                // The server says nothing more until the handshake, so no buffered bytes
                // are lost by unwrapping the plain stream; no new greeting follows (RFC 2595).
                let stream = tls(plain.into_inner()).await.map_err(ScanError::Connect)?;
                Pop3 {
                    io: BufStream::new(Box::new(stream)),
                }
            }
        };
        if let Some((user, password)) = &cfg.credentials {
            session
                .command(&format!("USER {user}"))
                .await
                .map_err(as_auth)?;
            session
                .command_hidden(&format!("PASS {}", password.expose()), "PASS")
                .await
                .map_err(as_auth)?;
        }
        Ok(session)
    }

    async fn greeted(stream: Stream) -> Result<Pop3, ScanError> {
        let mut io = BufStream::new(stream);
        status(&mut io, "greeting").await?;
        Ok(Pop3 { io })
    }

    /// Every message with its UIDL, in mailbox order.
    pub async fn list(&mut self) -> Result<Vec<Listed>, ScanError> {
        self.command("UIDL").await?;
        let body = self.multiline("UIDL").await?;
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let mut parts = line.split_ascii_whitespace();
            let (Some(n), Some(uid)) = (parts.next(), parts.next()) else {
                continue;
            };
            let n: u32 = n
                .parse()
                .map_err(|_| ScanError::Protocol(format!("UIDL: bad line {line:?}")))?;
            out.push(Listed {
                id: uid.to_owned(),
                handle: n,
            });
        }
        Ok(out)
    }

    pub async fn fetch(&mut self, handles: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, ScanError> {
        let mut out = Vec::with_capacity(handles.len());
        for &n in handles {
            self.command(&format!("RETR {n}")).await?;
            out.push((n, self.multiline("RETR").await?));
        }
        Ok(out)
    }

    /// Marks messages deleted; they go at [`Pop3::finish`].
    pub async fn remove(&mut self, handles: &[u32]) -> Result<(), ScanError> {
        for &n in handles {
            self.command(&format!("DELE {n}")).await?;
        }
        Ok(())
    }

    /// QUIT: the server deletes the marked messages and only then answers +OK.
    pub async fn finish(mut self) -> Result<(), ScanError> {
        self.command("QUIT").await.map(|_| ())
    }

    async fn command(&mut self, line: &str) -> Result<String, ScanError> {
        let name = line.split(' ').next().unwrap_or(line).to_owned();
        self.command_hidden(line, &name).await
    }

    /// Sends `line`; errors name the command as `shown` so a password never reaches a log.
    async fn command_hidden(&mut self, line: &str, shown: &str) -> Result<String, ScanError> {
        send(&mut self.io, line, shown).await?;
        status(&mut self.io, shown).await
    }

    /// Reads a multi-line answer up to the lone dot, undoing dot-stuffing.
    async fn multiline(&mut self, what: &str) -> Result<Vec<u8>, ScanError> {
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = timed(what, self.io.read_until(b'\n', &mut line)).await?;
            if n == 0 {
                return Err(ScanError::Protocol(format!(
                    "{what}: the server closed the connection mid-answer"
                )));
            }
            if line == b".\r\n" || line == b".\n" {
                return Ok(out);
            }
            let start = usize::from(line.starts_with(b".."));
            out.extend_from_slice(&line[start..]);
        }
    }
}

fn as_auth(e: ScanError) -> ScanError {
    match e {
        ScanError::Rejected(text) => ScanError::Auth(text),
        other => other,
    }
}

async fn send<S: AsyncWrite + Unpin>(io: &mut S, line: &str, shown: &str) -> Result<(), ScanError> {
    timed(shown, async {
        io.write_all(line.as_bytes()).await?;
        io.write_all(b"\r\n").await?;
        io.flush().await
    })
    .await
}

/// Reads a status line: `+OK text` gives the text, `-ERR text` an error.
async fn status<S: AsyncBufRead + Unpin>(io: &mut S, what: &str) -> Result<String, ScanError> {
    let mut line = Vec::new();
    let n = timed(what, io.read_until(b'\n', &mut line)).await?;
    if n == 0 {
        return Err(ScanError::Protocol(format!(
            "{what}: the server closed the connection"
        )));
    }
    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
    if let Some(rest) = text.strip_prefix("+OK") {
        Ok(rest.trim_start().to_owned())
    } else {
        Err(ScanError::Rejected(format!("{what}: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// A session whose server side is scripted: `answers` is everything the server says.
    async fn session(answers: &[u8]) -> (Pop3, DuplexStream) {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        server.write_all(answers).await.unwrap();
        (
            Pop3 {
                io: BufStream::new(Box::new(client)),
            },
            server,
        )
    }

    #[tokio::test]
    async fn retr_undoes_dot_stuffing_and_stops_at_the_lone_dot() {
        let (mut s, mut server) =
            session(b"+OK 30 octets\r\nSubject: x\r\n\r\n..leading dot\r\n.\r\n").await;
        let got = s.fetch(&[7]).await.unwrap();
        assert_eq!(
            got,
            vec![(7, b"Subject: x\r\n\r\n.leading dot\r\n".to_vec())]
        );
        drop(s);
        let mut sent = String::new();
        server.read_to_string(&mut sent).await.unwrap();
        assert_eq!(sent, "RETR 7\r\n");
    }

    #[tokio::test]
    async fn uidl_lists_numbers_and_ids() {
        let (mut s, _server) = session(b"+OK\r\n1 000000016b0973d6\r\n2 abc\r\n.\r\n").await;
        let listed = s.list().await.unwrap();
        let got: Vec<(u32, &str)> = listed.iter().map(|l| (l.handle, l.id.as_str())).collect();
        assert_eq!(got, vec![(1, "000000016b0973d6"), (2, "abc")]);
    }

    #[tokio::test]
    async fn err_answers_and_cut_connections_are_errors() {
        let (mut s, _server) = session(b"-ERR no such message\r\n").await;
        let err = s.fetch(&[9]).await.unwrap_err();
        assert!(
            matches!(&err, ScanError::Rejected(m) if m.contains("RETR")),
            "{err:?}"
        );

        let (mut s, mut server) = session(b"+OK\r\nSubject: x\r\n").await;
        server.shutdown().await.unwrap(); // the server hangs up mid-message
        let err = s.fetch(&[1]).await.unwrap_err();
        assert!(
            matches!(&err, ScanError::Protocol(m) if m.contains("mid-answer")),
            "{err:?}"
        );
    }

    #[test]
    fn a_refused_login_is_an_auth_error() {
        assert!(matches!(
            as_auth(ScanError::Rejected("PASS: -ERR [AUTH] failed".into())),
            ScanError::Auth(_)
        ));
        assert!(matches!(
            as_auth(ScanError::Protocol("x".into())),
            ScanError::Protocol(_)
        ));
    }
}

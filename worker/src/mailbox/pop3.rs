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
//!
//! Every multi-line answer is read under a cap, so no server, honest or not, can make the
//! scanner hold more than that in memory: a message whose RETR runs past `maxMessageBytes`
//! plus slack is abandoned mid-answer, and with it the session (its end is unknown).

use std::collections::HashMap;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream,
};

use super::net::{self, Stream, timed};
use super::{Fetched, Listed, MailboxConfig, ScanError};
use bounceops_api::TlsMode;

/// Most bytes of a LIST or UIDL answer: 30 bytes a line for a million messages.
pub(super) const LISTING_CAP: u64 = 32 << 20;

pub struct Pop3 {
    io: BufStream<Stream>,
    /// Most bytes read of one RETR answer.
    retr_cap: u64,
    /// The message whose answer was abandoned: the rest of it is still on the wire, so
    /// the session can send no further command.
    abandoned: Option<u32>,
}

/// The RETR cap for `maxMessageBytes`: servers may list sizes with LF line ends (as the
/// file is stored) and send CRLF, so an honest answer may exceed its LIST size; an eighth
/// covers lines of 8 bytes and more.
pub fn retr_cap(max_message_bytes: u64) -> u64 {
    max_message_bytes + max_message_bytes / 8
}

impl Pop3 {
    pub async fn open(cfg: &MailboxConfig) -> Result<Pop3, ScanError> {
        let tcp = net::connect(&cfg.host, cfg.port).await?;
        let tls = |tcp| super::tls::handshake(tcp, &cfg.host, cfg.tls_skip_verify);
        let mut session = match cfg.tls {
            TlsMode::None => Pop3::greeted(Box::new(tcp)).await?,
            TlsMode::Tls => {
                let stream = tls(tcp).await?;
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
                let stream = tls(plain.into_inner()).await?;
                Pop3::new(Box::new(stream))
            }
        };
        session.retr_cap = retr_cap(cfg.max_message_bytes);
        let (user, password) = &cfg.credentials;
        session
            .command(&format!("USER {user}"))
            .await
            .map_err(as_auth)?;
        session
            .command_hidden(&format!("PASS {}", password.expose()), "PASS")
            .await
            .map_err(as_auth)?;
        Ok(session)
    }

    pub(super) fn new(stream: Stream) -> Pop3 {
        Pop3 {
            io: BufStream::new(stream),
            retr_cap: retr_cap(bounceops_api::defaults::max_message_bytes()),
            abandoned: None,
        }
    }

    async fn greeted(stream: Stream) -> Result<Pop3, ScanError> {
        let mut session = Pop3::new(stream);
        status(&mut session.io, "greeting").await?;
        Ok(session)
    }

    /// Every message with its UIDL and LIST size, in mailbox order.
    pub async fn list(&mut self) -> Result<Vec<Listed>, ScanError> {
        let sizes: HashMap<u32, u64> = self
            .listing("LIST")
            .await?
            .into_iter()
            .filter_map(|(n, size)| Some((n, size.parse().ok()?)))
            .collect();
        Ok(self
            .listing("UIDL")
            .await?
            .into_iter()
            .map(|(n, uid)| Listed {
                id: uid,
                handle: n,
                // A server that lists no size for a message still cannot send more than
                // the RETR cap of it.
                size: sizes.get(&n).copied().unwrap_or(0),
            })
            .collect())
    }

    /// The `<number> <value>` lines of a LIST or UIDL answer.
    async fn listing(&mut self, command: &str) -> Result<Vec<(u32, String)>, ScanError> {
        self.command(command).await?;
        let Some(body) = self.multiline(command, LISTING_CAP).await? else {
            return Err(ScanError::Protocol(format!(
                "{command}: the answer is longer than {LISTING_CAP} bytes"
            )));
        };
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let mut parts = line.split_ascii_whitespace();
            let (Some(n), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let n: u32 = n
                .parse()
                .map_err(|_| ScanError::Protocol(format!("{command}: bad line {line:?}")))?;
            out.push((n, value.to_owned()));
        }
        Ok(out)
    }

    /// RETR of each message in turn; stops after one whose answer runs past the cap, or
    /// once the bodies read pass `room` (see `Session::fetch`).
    pub async fn fetch(
        &mut self,
        handles: &[u32],
        room: u64,
    ) -> Result<Vec<(u32, Fetched)>, ScanError> {
        let mut out = Vec::with_capacity(handles.len());
        let mut held = 0u64;
        for &n in handles {
            if held > room {
                super::past_room(held, room, handles.len() - out.len());
                break;
            }
            self.command(&format!("RETR {n}")).await?;
            match self.multiline("RETR", self.retr_cap).await? {
                Some(raw) => {
                    held += raw.len() as u64;
                    out.push((n, Fetched::Whole(raw)));
                }
                None => {
                    self.abandoned = Some(n);
                    out.push((n, Fetched::Oversized));
                    break;
                }
            }
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
        if let Some(n) = self.abandoned {
            return Err(ScanError::Protocol(format!(
                "{shown}: not sent: the server sent message {n} past its LIST size and \
                 maxMessageBytes, and the session was given up in the middle of it"
            )));
        }
        send(&mut self.io, line, shown).await?;
        status(&mut self.io, shown).await
    }

    /// Reads a multi-line answer up to the lone dot, undoing dot-stuffing; `None` once it
    /// holds more than `cap` bytes, having read at most a few bytes more (no line, however
    /// long, is read whole past the cap).
    async fn multiline(&mut self, what: &str, cap: u64) -> Result<Option<Vec<u8>>, ScanError> {
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            // Room for the rest of the cap and the terminating ".\r\n".
            let room = cap.saturating_sub(out.len() as u64) + 3;
            let n = timed(what, (&mut self.io).take(room).read_until(b'\n', &mut line)).await?;
            if !line.ends_with(b"\n") {
                if n as u64 == room {
                    return Ok(None);
                }
                return Err(ScanError::Protocol(format!(
                    "{what}: the server closed the connection mid-answer"
                )));
            }
            if line == b".\r\n" || line == b".\n" {
                return Ok(Some(out));
            }
            let start = usize::from(line.starts_with(b".."));
            out.extend_from_slice(&line[start..]);
            if out.len() as u64 > cap {
                return Ok(None);
            }
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
        (Pop3::new(Box::new(client)), server)
    }

    /// Everything the client sent, once it is gone.
    async fn sent(s: Pop3, mut server: DuplexStream) -> String {
        drop(s);
        let mut sent = String::new();
        server.read_to_string(&mut sent).await.unwrap();
        sent
    }

    #[tokio::test]
    async fn retr_undoes_dot_stuffing_and_stops_at_the_lone_dot() {
        let (mut s, server) =
            session(b"+OK 30 octets\r\nSubject: x\r\n\r\n..leading dot\r\n.\r\n").await;
        let got = s.fetch(&[7], u64::MAX).await.unwrap();
        assert_eq!(
            got,
            vec![(
                7,
                Fetched::Whole(b"Subject: x\r\n\r\n.leading dot\r\n".to_vec())
            )]
        );
        assert_eq!(sent(s, server).await, "RETR 7\r\n");
    }

    /// Once the bodies read pass the room, no further RETR is sent (the first always is),
    /// and the session goes on: nothing was abandoned mid-answer.
    #[tokio::test]
    async fn fetch_stops_once_the_bodies_pass_the_room() {
        // 76 bytes each once read.
        let message = |c: &str| format!("+OK\r\nSubject: {c}\r\n\r\n{}\r\n.\r\n", c.repeat(60));
        let script = format!("{}{}+OK\r\n", message("a"), message("b"));
        let (mut s, server) = session(script.as_bytes()).await;
        let got = s.fetch(&[1, 2, 3], 100).await.unwrap();
        assert_eq!(got.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![1, 2]);
        s.remove(&[1]).await.unwrap();
        assert_eq!(sent(s, server).await, "RETR 1\r\nRETR 2\r\nDELE 1\r\n");

        let (mut s, server) = session(message("a").as_bytes()).await;
        let got = s.fetch(&[1, 2], 0).await.unwrap();
        assert_eq!(got.len(), 1, "the first message is read whatever the room");
        assert_eq!(sent(s, server).await, "RETR 1\r\n");
    }

    #[tokio::test]
    async fn list_joins_uidl_ids_and_list_sizes() {
        let (mut s, server) = session(
            b"+OK 2 messages\r\n1 120\r\n2 99999999\r\n.\r\n\
              +OK\r\n1 000000016b0973d6\r\n2 abc\r\n.\r\n",
        )
        .await;
        let listed = s.list().await.unwrap();
        let got: Vec<(u32, &str, u64)> = listed
            .iter()
            .map(|l| (l.handle, l.id.as_str(), l.size))
            .collect();
        assert_eq!(
            got,
            vec![(1, "000000016b0973d6", 120), (2, "abc", 99_999_999)]
        );
        assert_eq!(sent(s, server).await, "LIST\r\nUIDL\r\n");
    }

    /// A server that sends far more than it listed: reading stops just past the cap, the
    /// message is reported oversized, and the session refuses further commands (the rest
    /// of the answer is still on the wire).
    #[tokio::test]
    async fn retr_past_the_cap_is_oversized_and_ends_the_session() {
        const CAP: u64 = 4096;
        for body in [
            // Many short lines, and one endless line without a line break.
            format!("{}\r\n", "x".repeat(68)).repeat(1000),
            "y".repeat(1 << 20),
        ] {
            let (client, mut server) = tokio::io::duplex(1 << 12);
            let mut s = Pop3::new(Box::new(client));
            s.retr_cap = CAP;
            let answer = format!("+OK\r\n{body}\r\n.\r\n+OK\r\n").into_bytes();
            let writer = tokio::spawn(async move {
                let mut written = 0usize;
                for chunk in answer.chunks(1024) {
                    if server.write_all(chunk).await.is_err() {
                        break;
                    }
                    written += chunk.len();
                }
                written
            });
            let got = s.fetch(&[3, 4], u64::MAX).await.unwrap();
            assert_eq!(
                got,
                vec![(3, Fetched::Oversized)],
                "message 4 is not asked for"
            );
            let err = s.remove(&[1]).await.unwrap_err();
            assert!(
                matches!(&err, ScanError::Protocol(m) if m.contains("given up")),
                "{err:?}"
            );
            drop(s);
            let written = writer.await.unwrap() as u64;
            // The duplex buffer (4 KiB) and BufStream (8 KiB) hold what was sent ahead.
            assert!(
                written <= CAP + (16 << 10),
                "read {written} bytes of a {} byte answer",
                body.len()
            );
        }
    }

    #[tokio::test]
    async fn a_message_of_exactly_the_cap_is_whole() {
        let body = format!("{}\r\n", "z".repeat(4094));
        let (mut s, _server) = session(format!("+OK\r\n{body}.\r\n").as_bytes()).await;
        s.retr_cap = body.len() as u64;
        let got = s.fetch(&[1], u64::MAX).await.unwrap();
        assert_eq!(got, vec![(1, Fetched::Whole(body.into_bytes()))]);
    }

    #[tokio::test]
    async fn err_answers_and_cut_connections_are_errors() {
        let (mut s, _server) = session(b"-ERR no such message\r\n").await;
        let err = s.fetch(&[9], u64::MAX).await.unwrap_err();
        assert!(
            matches!(&err, ScanError::Rejected(m) if m.contains("RETR")),
            "{err:?}"
        );

        let (mut s, mut server) = session(b"+OK\r\nSubject: x\r\n").await;
        server.shutdown().await.unwrap(); // the server hangs up mid-message
        let err = s.fetch(&[1], u64::MAX).await.unwrap_err();
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

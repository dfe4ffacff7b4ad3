//! A Postgres proxy that loses the answer to one COMMIT: the case a client cannot tell
//! apart from a failed commit, because the connection breaks after COMMIT was sent.
//!
//! It reads the client's side of the wire protocol (a startup message, then messages of
//! one type byte and a length) to find a simple-query `COMMIT`, which is how sqlx ends a
//! transaction, or `COMMIT; BEGIN; ...`, which is how a writer under load ends one batch's
//! and begins the next (`record::Chain`). Armed with a [`Fate`], it lets that COMMIT reach
//! the server and drops the connection once the server has answered it (committed, answer
//! lost), or drops the connection instead of forwarding it (never committed). Everything
//! else passes as is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The server commits; its answer never reaches the client.
    CommittedAnswerLost,
    /// The COMMIT never reaches the server, which rolls the transaction back.
    NeverSent,
}

pub struct CommitTrap {
    pub port: u16,
    armed: Arc<Mutex<Option<Fate>>>,
    sprung: Arc<AtomicUsize>,
}

impl CommitTrap {
    pub async fn start(target: SocketAddr) -> CommitTrap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(Mutex::new(None));
        let sprung = Arc::new(AtomicUsize::new(0));
        let (armed2, sprung2) = (armed.clone(), sprung.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, armed2.clone(), sprung2.clone()));
            }
        });
        CommitTrap {
            port,
            armed,
            sprung,
        }
    }

    /// The next COMMIT on any connection meets `fate`; later ones pass.
    pub fn arm(&self, fate: Fate) {
        *self.armed.lock().unwrap() = Some(fate);
    }

    /// How many COMMITs the trap has caught.
    pub fn sprung(&self) -> usize {
        self.sprung.load(Ordering::SeqCst)
    }

    /// `url` pointing at the proxy, without TLS (the proxy reads the protocol in clear).
    pub fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.query_pairs_mut().append_pair("sslmode", "disable");
        u.to_string()
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<Mutex<Option<Fate>>>,
    sprung: Arc<AtomicUsize>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Set once the trapped COMMIT went to the server: its first answer closes everything.
    let swallowing = Arc::new(AtomicBool::new(false));
    let answer_lost = Arc::new(Notify::new());
    let (swallow, lost) = (swallowing.clone(), answer_lost.clone());
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if swallow.load(Ordering::SeqCst) {
                lost.notify_one();
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut first = true;
    loop {
        let Some(message) = read_message(&mut from_client, first).await else {
            break;
        };
        first = false;
        let fate = if is_commit(&message) {
            armed.lock().unwrap().take()
        } else {
            None
        };
        match fate {
            None => {
                if to_server.write_all(&message).await.is_err() {
                    break;
                }
            }
            Some(Fate::NeverSent) => {
                sprung.fetch_add(1, Ordering::SeqCst);
                break;
            }
            Some(Fate::CommittedAnswerLost) => {
                sprung.fetch_add(1, Ordering::SeqCst);
                swallowing.store(true, Ordering::SeqCst);
                if to_server.write_all(&message).await.is_ok() {
                    answer_lost.notified().await;
                }
                break;
            }
        }
    }
    back.abort();
    // Dropping both streams closes both connections.
}

/// One whole frontend message, or None at the end of the stream. The first message of a
/// connection (the startup message) has no type byte.
async fn read_message(stream: &mut (impl AsyncRead + Unpin), first: bool) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    if !first {
        message.push(stream.read_u8().await.ok()?);
    }
    let len = stream.read_u32().await.ok()?;
    message.extend_from_slice(&len.to_be_bytes());
    let mut body = vec![0u8; (len as usize).checked_sub(4)?];
    stream.read_exact(&mut body).await.ok()?;
    message.extend(body);
    Some(message)
}

/// A simple query ('Q') whose text is COMMIT, or whose first statement is.
fn is_commit(message: &[u8]) -> bool {
    message.first() == Some(&b'Q')
        && message
            .get(5..)
            .map(|q| {
                let text = String::from_utf8_lossy(q);
                let first = text.trim_end_matches('\0').split(';').next().unwrap_or("");
                first.trim().eq_ignore_ascii_case("COMMIT")
            })
            .unwrap_or(false)
}

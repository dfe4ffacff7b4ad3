//! An IMAP session (async-imap): LOGIN over plain TCP, implicit TLS or STARTTLS; one
//! folder selected; messages named by `UIDVALIDITY:UID` so that an identity never points
//! at another message after the server renumbers the folder.
//!
//! Messages are read with `BODY.PEEK[]`, so mail that is left in place keeps its \Seen
//! state for the humans who read the mailbox too. A recorded bounce is either deleted
//! (flagged \Deleted and expunged) or, with `moveTo`, moved to that folder.
//!
//! Sizes come with the listing (`RFC822.SIZE`), and bodies are fetched as the partial
//! `BODY.PEEK[]<0.max+1>`: even a server whose listed size is wrong sends at most one byte
//! more than `maxMessageBytes` of a message, and that byte tells it is oversized.

use std::collections::BTreeMap;

use async_imap::{Client, Session};
use futures::TryStreamExt;

use super::net::{self, Progress, Stream, timed, timed_while_receiving};
use super::{Fetched, Listed, MailboxConfig, ScanError};
use bounceops_api::TlsMode;

pub struct Imap {
    session: Session<Stream>,
    uid_validity: u32,
    uidplus: bool,
    /// The folder recorded bounces go to (`moveTo`), and whether the server can MOVE
    /// (RFC 6851) or only COPY.
    move_to: Option<String>,
    can_move: bool,
    max_message_bytes: u64,
    /// When the connection last delivered bytes: a batch's FETCH runs while they come.
    progress: Progress,
}

impl Imap {
    pub async fn open(cfg: &MailboxConfig) -> Result<Imap, ScanError> {
        let tcp = net::connect(&cfg.host, cfg.port).await?;
        let tls = |tcp| super::tls::handshake(tcp, &cfg.host, cfg.tls_skip_verify);
        let stream: Stream = match cfg.tls {
            TlsMode::None => Box::new(tcp),
            TlsMode::Tls => Box::new(tls(tcp).await?),
            TlsMode::Starttls => {
                let mut plain = Client::new(tcp);
                greeting(&mut plain).await?;
                timed("STARTTLS", plain.run_command_and_check_ok("STARTTLS", None))
                    .await
                    .map_err(|e| ScanError::Connect(format!("the server refused STARTTLS: {e}")))?;
                Box::new(tls(plain.into_inner()).await?)
            }
        };
        let progress = Progress::default();
        let mut client = Client::new(Box::new(progress.watch(stream)) as Stream);
        if cfg.tls != TlsMode::Starttls {
            greeting(&mut client).await?;
        }
        let (user, password) = &cfg.credentials;
        let login = tokio::time::timeout(net::IO_TIMEOUT, client.login(user, password.expose()))
            .await
            .map_err(|_| ScanError::Protocol("LOGIN: no answer".into()))?;
        let mut session = match login {
            Ok(session) => session,
            Err((async_imap::error::Error::No(text), _)) => return Err(ScanError::Auth(text)),
            Err((e, _)) => return Err(ScanError::Protocol(format!("LOGIN: {e}"))),
        };
        let capabilities = timed("CAPABILITY", session.capabilities()).await?;
        let uidplus = capabilities.has_str("UIDPLUS");
        let can_move = capabilities.has_str("MOVE");
        if let Some(target) = &cfg.move_to {
            ensure_folder(&mut session, target).await?;
        }
        let mailbox = timed("SELECT", session.select(&cfg.folder)).await?;
        let uid_validity = mailbox
            .uid_validity
            .ok_or_else(|| ScanError::Protocol(format!("SELECT {}: no UIDVALIDITY", cfg.folder)))?;
        Ok(Imap {
            session,
            uid_validity,
            uidplus,
            move_to: cfg.move_to.clone(),
            can_move,
            max_message_bytes: cfg.max_message_bytes,
            progress,
        })
    }

    /// Every message of the folder with its size, oldest UID first.
    pub async fn list(&mut self) -> Result<Vec<Listed>, ScanError> {
        // On an empty folder `1:*` matches nothing and the answer is a plain OK. A folder of
        // many messages answers at length: bounded by silence, as a batch's FETCH is.
        let sizes: BTreeMap<u32, u64> = timed_while_receiving("UID FETCH", &self.progress, async {
            self.session
                .uid_fetch("1:*", "(UID RFC822.SIZE)")
                .await?
                // Unsolicited FETCH responses (flag changes by other clients) carry no size.
                .try_filter_map(|f| async move { Ok(f.uid.zip(f.size)) })
                .map_ok(|(uid, size)| (uid, u64::from(size)))
                .try_collect()
                .await
        })
        .await?;
        Ok(sizes
            .into_iter()
            .map(|(uid, size)| Listed {
                id: format!("{}:{uid}", self.uid_validity),
                handle: uid,
                size,
            })
            .collect())
    }

    /// The messages `uids` in one UID FETCH; past `room` (see `Session::fetch`) the
    /// answers are still read, since a command's answer cannot be cut short, but their
    /// bodies are dropped as they come and their messages left for the next scan.
    pub async fn fetch(
        &mut self,
        uids: &[u32],
        room: u64,
    ) -> Result<Vec<(u32, Fetched)>, ScanError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let max = self.max_message_bytes;
        let query = format!("(UID BODY.PEEK[]<0.{}>)", max + 1);
        let (fetched, held, left) = timed_while_receiving("UID FETCH", &self.progress, async {
            // Each answer is copied out and dropped as it arrives, so the batch is held
            // once, not twice.
            self.session
                .uid_fetch(&set, &query)
                .await?
                .try_fold(
                    (Vec::new(), 0u64, 0usize),
                    |(mut fetched, mut held, mut left), f| async move {
                        // Unsolicited FETCH responses (flag changes by other clients) carry
                        // no body.
                        match (f.uid, f.body()) {
                            (Some(uid), Some(body)) if body.len() as u64 > max => {
                                fetched.push((uid, Fetched::Oversized));
                            }
                            (Some(_), Some(_)) if held > room => left += 1,
                            (Some(uid), Some(body)) => {
                                held += body.len() as u64;
                                fetched.push((uid, Fetched::Whole(body.to_vec())));
                            }
                            _ => {}
                        }
                        Ok((fetched, held, left))
                    },
                )
                .await
        })
        .await?;
        if left > 0 {
            super::past_room(held, room, left);
        }
        Ok(fetched)
    }

    /// Whether the server offered MOVE; without it, `remove` copies and deletes.
    pub fn can_move(&self) -> bool {
        self.can_move
    }

    /// Takes the messages out of the folder: moved to `moveTo` when set, else deleted.
    pub async fn remove(&mut self, uids: &[u32]) -> Result<(), ScanError> {
        if uids.is_empty() || self.set_aside(uids).await? {
            return Ok(());
        }
        self.delete(&uid_set(uids)).await
    }

    /// Moves the messages to `moveTo`; false, touching nothing, when it is not set.
    pub async fn set_aside(&mut self, uids: &[u32]) -> Result<bool, ScanError> {
        let Some(target) = &self.move_to else {
            return Ok(false);
        };
        if uids.is_empty() {
            return Ok(true);
        }
        let set = uid_set(uids);
        if self.can_move {
            // One atomic step: the message is never in both folders or in neither.
            timed("UID MOVE", self.session.uid_mv(&set, target)).await?;
            return Ok(true);
        }
        // Without MOVE: copy, then delete. If the deletion fails (a crash, a dropped
        // connection), the next scan reads the message again: its bounce counts once
        // (the event id), but the folder gets a second copy of it.
        timed("UID COPY", self.session.uid_copy(&set, target)).await?;
        self.delete(&set).await?;
        Ok(true)
    }

    /// Flags the messages \Deleted and expunges exactly them (UID EXPUNGE when the server
    /// has UIDPLUS, so that messages another client flagged are not swept away with ours).
    async fn delete(&mut self, set: &str) -> Result<(), ScanError> {
        timed("UID STORE", async {
            self.session
                .uid_store(set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        if self.uidplus {
            timed("UID EXPUNGE", async {
                self.session
                    .uid_expunge(set)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        } else {
            timed("EXPUNGE", async {
                self.session.expunge().await?.try_collect::<Vec<_>>().await
            })
            .await?;
        }
        Ok(())
    }

    pub async fn finish(mut self) -> Result<(), ScanError> {
        timed("LOGOUT", self.session.logout()).await
    }
}

/// Creates the `moveTo` folder unless it exists, so a configuration can name a new one.
async fn ensure_folder(session: &mut Session<Stream>, folder: &str) -> Result<(), ScanError> {
    // The IMAP answer is kept whole (`timed` only adds the timeout): a NO means the
    // folder does not exist, the one answer STATUS gives for a name it cannot open.
    let status = timed("STATUS", async {
        Ok::<_, std::convert::Infallible>(session.status(folder, "(MESSAGES)").await)
    })
    .await?;
    match status {
        Ok(_) => Ok(()),
        Err(async_imap::error::Error::No(_)) => {
            match timed("CREATE", session.create(folder)).await {
                Ok(()) => tracing::info!(folder, "created the moveTo folder"),
                // Another scanner of the same account may have created it meanwhile.
                Err(e) => {
                    timed("STATUS", session.status(folder, "(MESSAGES)"))
                        .await
                        .map_err(|_| {
                            ScanError::Protocol(format!("moveTo folder {folder:?}: {e}"))
                        })?;
                }
            }
            Ok(())
        }
        Err(e) => Err(ScanError::Protocol(format!("STATUS {folder:?}: {e}"))),
    }
}

async fn greeting<T>(client: &mut Client<T>) -> Result<(), ScanError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug,
{
    match timed("greeting", client.read_response()).await? {
        Some(_) => Ok(()),
        None => Err(ScanError::Protocol(
            "greeting: the server closed the connection".into(),
        )),
    }
}

/// `1,2,5` as an IMAP sequence set; ranges are not worth building for batch-sized sets.
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

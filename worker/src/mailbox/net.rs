//! The byte stream under a mailbox session: a TCP connection to the server, plain or
//! wrapped in TLS, behind one trait object so that POP3 and IMAP code is written once.

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ScanError;

/// Every network step of a session is bounded by this: a server that stops answering must
/// fail the scan (and leave its messages for the next one), not hang the scanner forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

pub type Stream = Box<dyn Io>;

pub async fn connect(host: &str, port: u16) -> Result<TcpStream, ScanError> {
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| ScanError::Connect(format!("{host}:{port}: timed out")))?
        .map_err(|e| ScanError::Connect(format!("{host}:{port}: {e}")))?;
    // Commands and answers are small and strictly alternating: Nagle would add delay.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Bounds one network step by [`IO_TIMEOUT`]; `what` names the step in the error.
pub async fn timed<T, E: std::fmt::Display>(
    what: &str,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, ScanError> {
    match tokio::time::timeout(IO_TIMEOUT, step).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ScanError::Protocol(format!("{what}: {e}"))),
        Err(_) => Err(ScanError::Protocol(format!(
            "{what}: no answer within {}s",
            IO_TIMEOUT.as_secs()
        ))),
    }
}

/// The slowest a server may send the answer to a long step (a batch of messages, the
/// listing), on average over the whole step. The bounds on silence ([`IO_TIMEOUT`]) let a
/// step run while bytes keep coming, so a server that sends a line now and then, never
/// silent for a minute, could hold a scan, and the downloads budget it took, without end:
/// [`paced`] bounds the whole step by its size at this rate. 16 KiB/s is far below any
/// mail server's link, so a real one, however slow, is never cut off by it.
const FLOOR_BYTES_PER_SECOND: u64 = 16 << 10;

/// How long a step that receives about `bytes` may take: [`IO_TIMEOUT`] plus the bytes at
/// [`FLOOR_BYTES_PER_SECOND`].
fn allowance(bytes: u64) -> Duration {
    IO_TIMEOUT + Duration::from_secs(bytes / FLOOR_BYTES_PER_SECOND)
}

/// Bounds `step`, which receives about `bytes`, by `allowance` (a minute plus its bytes at
/// 16 KiB/s); `what` names it in the error. The step's own reads stay bounded by silence
/// as well.
pub async fn paced<T>(
    what: &str,
    bytes: u64,
    step: impl Future<Output = Result<T, ScanError>>,
) -> Result<T, ScanError> {
    let limit = allowance(bytes);
    tokio::time::timeout(limit, step).await.unwrap_or_else(|_| {
        Err(ScanError::Protocol(format!(
            "{what}: not done within {}s ({bytes} bytes at {} KiB/s, plus {}s): the server sends \
             too slowly",
            limit.as_secs(),
            FLOOR_BYTES_PER_SECOND >> 10,
            IO_TIMEOUT.as_secs()
        )))
    })
}

/// When the stream under a session last delivered bytes, for the steps whose answer can be
/// long (a batch of messages over IMAP, one answer of up to `maxMessageBytes` per message):
/// [`timed_while_receiving`] lets them run as long as bytes keep coming, as POP3's reads,
/// each bounded by [`IO_TIMEOUT`], already do. A fixed bound on the whole would fail a large
/// message on a slow link at every scan, and with it every message of its batch; the bound
/// on the whole that there is grows with the step's size ([`paced`], around each batch).
#[derive(Clone, Debug)]
pub struct Progress {
    start: Instant,
    /// Milliseconds from `start` to the last read that delivered bytes.
    last_ms: Arc<AtomicU64>,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Progress {
    /// `stream`, noting here each read that delivers bytes.
    pub fn watch<S: Io>(&self, stream: S) -> Watched<S> {
        Watched {
            inner: stream,
            progress: self.clone(),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A stream whose reads are noted in a [`Progress`].
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    progress: Progress,
}

impl<S: Io> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.progress.touch();
        }
        read
    }
}

impl<S: Io> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Like [`timed`], for a step whose answer may take long to arrive whole: it fails only once
/// nothing has arrived for [`IO_TIMEOUT`] (counted from the step's start at first).
pub async fn timed_while_receiving<T, E: std::fmt::Display>(
    what: &str,
    progress: &Progress,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, ScanError> {
    progress.touch();
    tokio::pin!(step);
    loop {
        let deadline = progress.last() + IO_TIMEOUT;
        tokio::select! {
            done = &mut step => {
                return done.map_err(|e| ScanError::Protocol(format!("{what}: {e}")));
            }
            () = tokio::time::sleep_until(deadline) => {
                // Bytes may have come while this slept: then wait on from the last of them.
                if progress.last() + IO_TIMEOUT <= Instant::now() {
                    return Err(ScanError::Protocol(format!(
                        "{what}: nothing received for {}s",
                        IO_TIMEOUT.as_secs()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads everything `stream` sends until it closes.
    async fn read_all(mut stream: impl AsyncRead + Unpin) -> Result<usize, std::io::Error> {
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.map(|_| all.len())
    }

    /// [`read_all`] as a session step.
    async fn received(stream: impl AsyncRead + Unpin) -> Result<usize, ScanError> {
        read_all(stream)
            .await
            .map_err(|e| ScanError::Protocol(e.to_string()))
    }

    /// A server that sends `chunks` bytes, one chunk every `gap`, then closes.
    fn trickle(chunks: usize, gap: Duration) -> tokio::io::DuplexStream {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            for _ in 0..chunks {
                tokio::time::sleep(gap).await;
                if server.write_all(&[b'x'; 1000]).await.is_err() {
                    return;
                }
            }
        });
        client
    }

    /// A step that receives at least the floor rate finishes, however long it takes; one
    /// that trickles, never silent for a minute, fails at its allowance, not later.
    #[tokio::test(start_paused = true)]
    async fn a_step_is_bounded_by_its_size_at_the_floor_rate() {
        let one_mib = 1 << 20;
        // 1 MiB as 1,000-byte chunks 50 ms apart (20 KB/s): 52 s, within 60 + 64 s.
        let started = Instant::now();
        let got = paced(
            "RETR",
            one_mib,
            received(trickle(1049, Duration::from_millis(50))),
        )
        .await;
        assert_eq!(got.unwrap(), 1_049_000);
        assert!(started.elapsed() >= Duration::from_secs(52));

        // 100 KB as 1,000-byte chunks 50 s apart: never silent for 60 s, but at the floor
        // 100 KB take 6 s, so the step fails at 66 s.
        let started = Instant::now();
        let got = paced(
            "RETR",
            100_000,
            received(trickle(100, Duration::from_secs(50))),
        )
        .await;
        let error = got.unwrap_err().to_string();
        assert!(error.contains("RETR: not done within 66s"), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(66));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_answer_runs_while_bytes_keep_coming() {
        // 20 chunks 50 s apart: 1,000 s in all, far past IO_TIMEOUT, never 60 s silent.
        let progress = Progress::default();
        let stream = progress.watch(trickle(20, Duration::from_secs(50)));
        let started = Instant::now();
        let got = timed_while_receiving("UID FETCH", &progress, read_all(stream)).await;
        assert_eq!(got.unwrap(), 20_000);
        assert!(started.elapsed() >= Duration::from_secs(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_stops_fails_after_the_timeout_of_silence() {
        // Two chunks 50 s apart, then silence with the connection open.
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let sender = tokio::spawn(async move {
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_secs(50)).await;
                server.write_all(&[b'x'; 1000]).await.unwrap();
            }
            std::future::pending::<()>().await;
        });
        let progress = Progress::default();
        let started = Instant::now();
        let got =
            timed_while_receiving("UID FETCH", &progress, read_all(progress.watch(client))).await;
        let err = got.unwrap_err();
        assert!(
            matches!(&err, ScanError::Protocol(m) if m == "UID FETCH: nothing received for 60s"),
            "{err:?}"
        );
        // The last bytes came at 100 s: it gave up 60 s after them, not 60 s after the start.
        assert_eq!(started.elapsed().as_secs(), 160);
        sender.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_never_answers_fails_after_the_timeout() {
        let (client, _server) = tokio::io::duplex(1 << 16);
        let progress = Progress::default();
        let started = Instant::now();
        let got =
            timed_while_receiving("UID FETCH", &progress, read_all(progress.watch(client))).await;
        assert!(got.is_err());
        assert_eq!(started.elapsed().as_secs(), 60);
    }
}

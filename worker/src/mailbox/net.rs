//! The byte stream under a mailbox session: a TCP connection to the server, plain or
//! wrapped in TLS, behind one trait object so that POP3 and IMAP code is written once.

use std::fmt::Debug;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

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

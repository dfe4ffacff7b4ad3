//! One connection's bytes: lines in with a length bound and a deadline, replies out in
//! batches (RFC 2920: a pipelining client's replies go out together, flushed before the
//! server waits for more input).
//!
//! Framing is ours, not smtp-proto's: its `RequestReceiver` keeps up to 4 KiB of a line
//! and has no notion of a deadline or of a bare LF; here a command line is bounded by
//! RFC 5321 §4.5.3.1.4 and every read has a timeout. Each whole line is then handed to
//! smtp-proto's parser.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// The longest command line, CRLF included (RFC 5321 §4.5.3.1.4: 512 octets; the
/// extensions we advertise add no longer parameters than SIZE=<digits> and BODY=8BITMIME,
/// which fit with a 256-octet path).
pub const MAX_COMMAND_LINE: usize = 512;
/// Bytes read from the socket at once.
pub const READ_CHUNK: usize = 16 * 1024;

/// What reading a line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line ending in CRLF, with it (smtp-proto's parser wants the line end).
    Command(Vec<u8>),
    /// Longer than [`MAX_COMMAND_LINE`]; read and dropped to its end.
    TooLong,
    /// Ends in a bare LF (RFC 5321 §2.3.8 forbids taking it for a line end).
    BareLf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("the client closed the connection")]
    Closed,
    #[error("timed out")]
    TimedOut,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Conn<S> {
    pub io: S,
    /// Received and not consumed yet.
    pub input: Vec<u8>,
    output: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Conn<S> {
        Conn {
            io,
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    /// Queues a reply line (`code`, text); multi-line replies give several `lines`.
    pub fn reply(&mut self, code: u16, lines: &[&str]) {
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            self.output
                .extend_from_slice(format!("{code}{sep}{line}\r\n").as_bytes());
        }
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if !self.output.is_empty() {
            self.io.write_all(&self.output).await?;
            self.io.flush().await?;
            self.output.clear();
        }
        Ok(())
    }

    /// Reads more input before `deadline`, flushing queued replies first (the client may
    /// be waiting for them before it sends more).
    pub async fn fill(&mut self, deadline: Instant) -> Result<(), ConnError> {
        self.flush().await?;
        let start = self.input.len();
        self.input.resize(start + READ_CHUNK, 0);
        let read = tokio::time::timeout_at(deadline, self.io.read(&mut self.input[start..])).await;
        let n = match read {
            Err(_) => {
                self.input.truncate(start);
                return Err(ConnError::TimedOut);
            }
            Ok(Err(e)) => {
                self.input.truncate(start);
                return Err(e.into());
            }
            Ok(Ok(n)) => n,
        };
        self.input.truncate(start + n);
        if n == 0 {
            return Err(ConnError::Closed);
        }
        Ok(())
    }

    /// The next command line, waiting at most `timeout` for each part of it.
    pub async fn line(&mut self, timeout: Duration) -> Result<Line, ConnError> {
        let mut too_long = false;
        loop {
            if let Some(lf) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=lf).collect();
                if too_long || line.len() > MAX_COMMAND_LINE {
                    return Ok(Line::TooLong);
                }
                if !line.ends_with(b"\r\n") {
                    return Ok(Line::BareLf);
                }
                return Ok(Line::Command(line));
            }
            if self.input.len() > MAX_COMMAND_LINE {
                // Dropped as it comes, so an endless line holds no memory.
                too_long = true;
                self.input.clear();
            }
            self.fill(Instant::now() + timeout).await?;
        }
    }
}

//! The DATA phase: the message read up to its final `CRLF.CRLF` with smtp-proto's
//! `DataReceiver` (dot-unstuffing; only CRLF.CRLF ends it, so a bare LF cannot smuggle a
//! second message), held in memory up to `maxMessageBytes` and past that read and dropped
//! chunk by chunk, so an oversized message costs one read buffer, not its size.

use smtp_proto::request::receiver::DataReceiver;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::conn::{Conn, ConnError};

#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// The message, unstuffed, ending in CRLF.
    Whole(Vec<u8>),
    /// Larger than the bound: read to the end and dropped.
    TooBig,
}

/// Reads the message that follows a `354`, finishing before `deadline`.
pub async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    max_bytes: usize,
    deadline: Instant,
) -> Result<Body, ConnError> {
    let mut receiver = DataReceiver::new();
    let mut scratch = Vec::new();
    // The receiver starts as if in the middle of a line; a message that is empty or whose
    // first line starts with a dot needs it to have just seen a line end.
    receiver.ingest(&mut b"\r\n".iter(), &mut scratch);
    let mut message = Vec::new();
    let mut too_big = false;
    loop {
        if !conn.input.is_empty() {
            let input = std::mem::take(&mut conn.input);
            let mut bytes = input.iter();
            let done = if too_big {
                scratch.clear();
                receiver.ingest(&mut bytes, &mut scratch)
            } else {
                receiver.ingest(&mut bytes, &mut message)
            };
            // What follows the final dot is the next pipelined command.
            conn.input = bytes.as_slice().to_vec();
            if !too_big && message.len() > max_bytes {
                too_big = true;
                message = Vec::new();
            }
            if done {
                return Ok(match too_big {
                    true => Body::TooBig,
                    false => Body::Whole(message),
                });
            }
        }
        conn.fill(deadline).await?;
    }
}

//! The DATA phase: the message read up to its final `CRLF.CRLF` with smtp-proto's
//! `DataReceiver` (dot-unstuffing; only CRLF.CRLF ends it, so a bare LF cannot smuggle a
//! second message), held in memory up to `maxMessageBytes`, in room taken from the MX's
//! budget as it arrives (`super::memory`), and past either bound read and dropped chunk by
//! chunk, so an oversized message costs one read buffer, not its size.

use smtp_proto::request::receiver::DataReceiver;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::conn::{Conn, ConnError, READ_CHUNK};
use super::memory::Held;

pub enum Body {
    /// The message, unstuffed, ending in CRLF, with the room it takes.
    Whole(Vec<u8>, Held),
    /// Larger than the bound: read to the end and dropped.
    TooBig,
    /// The MX's budget had no room for it: read to the end and dropped.
    NoRoom,
}

/// Reads the message that follows a `354` into `room`, finishing before `deadline`.
pub async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    max_bytes: usize,
    mut room: Held,
    deadline: Instant,
) -> Result<Body, ConnError> {
    let mut receiver = DataReceiver::new();
    let mut scratch = Vec::new();
    // The receiver starts as if in the middle of a line; a message that is empty or whose
    // first line starts with a dot needs it to have just seen a line end.
    receiver.ingest(&mut b"\r\n".iter(), &mut scratch);
    let mut message = Vec::new();
    // The message's bytes so far, kept or not: one past the bound is `TooBig` even when
    // it was being dropped for want of room, so its sender does not retry it in vain.
    let mut received = 0;
    // `None` while the message is kept; else why it is dropped.
    let mut dropped: Option<Body> = None;
    loop {
        if !conn.input.is_empty() {
            let input = std::mem::take(&mut conn.input);
            if dropped.is_none() && !make_room(&mut message, &mut room, input.len(), max_bytes) {
                dropped = Some(Body::NoRoom);
                message = Vec::new();
            }
            let mut bytes = input.iter();
            let done = match dropped {
                Some(_) => {
                    scratch.clear();
                    let done = receiver.ingest(&mut bytes, &mut scratch);
                    received += scratch.len();
                    done
                }
                None => {
                    let before = message.len();
                    let done = receiver.ingest(&mut bytes, &mut message);
                    received += message.len() - before;
                    done
                }
            };
            // What follows the final dot is the next pipelined command.
            conn.input = bytes.as_slice().to_vec();
            if received > max_bytes && !matches!(dropped, Some(Body::TooBig)) {
                dropped = Some(Body::TooBig);
                message = Vec::new();
            }
            if dropped.is_some() {
                room.release();
            }
            if done {
                return Ok(dropped.unwrap_or(Body::Whole(message, room)));
            }
        }
        conn.fill(deadline).await?;
    }
}

/// Room in `message` for `incoming` more bytes (unstuffing only takes bytes away, and the
/// receiver holds back at most a line end), taken from `room` before it is allocated: the
/// next power of two, as a vector grows, but never past one read beyond the bound. `false`
/// when the budget has no room.
fn make_room(message: &mut Vec<u8>, room: &mut Held, incoming: usize, max_bytes: usize) -> bool {
    let needed = message.len() + incoming + 2;
    if needed <= message.capacity() {
        return true;
    }
    let capacity = needed
        .next_power_of_two()
        .min(max_bytes + READ_CHUNK)
        .max(needed);
    if !room.grow_to(capacity) {
        return false;
    }
    message.reserve_exact(capacity - message.len());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::memory::{MessageMemory, UNCOUNTED};
    use tokio::io::AsyncWriteExt;

    const MAX: usize = 1 << 20;

    /// `sent` through a `Conn`, read with `room`: what `read` gave, and what was left for
    /// the next command.
    async fn read_sent(sent: Vec<u8>, room: Held) -> (Body, Vec<u8>) {
        let (client, server) = tokio::io::duplex(4 << 20);
        let mut client = client;
        client.write_all(&sent).await.unwrap();
        drop(client);
        let mut conn = Conn::new(server);
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let body = read(&mut conn, MAX, room, deadline).await.unwrap();
        (body, conn.input)
    }

    fn memory() -> MessageMemory {
        MessageMemory::new(MAX, 1, prometheus::IntGauge::new("held", "held").unwrap())
    }

    /// `lines` lines of 1,000 bytes, then the final dot and `next`.
    fn message(lines: usize, next: &str) -> (String, Vec<u8>) {
        let text = format!("{}\r\n", "y".repeat(998)).repeat(lines);
        let sent = format!("{text}.\r\n{next}").into_bytes();
        (text, sent)
    }

    /// All of `m`'s budget, held.
    fn the_whole_budget(m: &MessageMemory) -> Held {
        let mut all = m.hold();
        assert!(all.grow_to(UNCOUNTED + 4 * (MAX + READ_CHUNK)));
        all
    }

    #[tokio::test]
    async fn a_message_is_held_in_room_from_the_budget() {
        let m = memory();
        let (text, sent) = message(300, "QUIT\r\n");
        let (body, rest) = read_sent(sent, m.hold()).await;
        let Body::Whole(raw, room) = body else {
            panic!("not whole");
        };
        assert_eq!(raw, text.as_bytes());
        assert_eq!(rest, b"QUIT\r\n");
        assert!(room.bytes() + UNCOUNTED >= raw.capacity());
        assert_eq!(
            room.bytes(),
            (512 << 10) - UNCOUNTED,
            "the next power of two, less what is not counted"
        );
    }

    #[tokio::test]
    async fn without_room_a_large_message_is_read_to_its_end_and_dropped() {
        let m = memory();
        let all = the_whole_budget(&m);
        let (_, sent) = message(200, "NOOP\r\n");
        let (body, rest) = read_sent(sent, m.hold()).await;
        assert!(matches!(body, Body::NoRoom));
        assert_eq!(rest, b"NOOP\r\n", "the next command is kept");
        let (_, small) = message(100, "");
        let (body, _) = read_sent(small, m.hold()).await;
        assert!(
            matches!(body, Body::Whole(..)),
            "a message within the uncounted bytes still gets in"
        );
        let (_, sent) = message(1100, "NOOP\r\n");
        let (body, rest) = read_sent(sent, m.hold()).await;
        assert!(
            matches!(body, Body::TooBig),
            "past the bound is too big, not a reason to retry"
        );
        assert_eq!(rest, b"NOOP\r\n");
        drop(all);
        let (_, sent) = message(200, "");
        let (body, _) = read_sent(sent, m.hold()).await;
        assert!(
            matches!(body, Body::Whole(..)),
            "room again once it is given back"
        );
    }

    #[tokio::test]
    async fn a_message_past_the_bound_gives_its_room_back() {
        let m = memory();
        let (_, sent) = message(1100, "");
        let (body, _) = read_sent(sent, m.hold()).await;
        assert!(matches!(body, Body::TooBig));
        the_whole_budget(&m);
    }
}

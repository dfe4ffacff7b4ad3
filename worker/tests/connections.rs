//! The server's connections under clients that misbehave on purpose, over raw TCP sockets:
//! a request head sent a byte at a time, connections left idle, more connections than the
//! cap, and a stop with such a client attached (crate::connections).

mod common;

use std::time::{Duration, Instant};

use bounce_worker::connections::ConnectionLimits;
use common::{TestDb, TestWorker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

async fn worker(db: &TestDb, limits: ConnectionLimits) -> TestWorker {
    TestWorker::start_with(&db.url, "", |s| s.tuning.connections = limits).await
}

/// Reads one answer to `GET /healthz` (`ok\n`, three bytes of body) from `stream`.
async fn read_healthz(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nok\n") {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// A connection that has been served one request, so that it is surely accepted and holds
/// its slot.
async fn served_connection(w: &TestWorker) -> TcpStream {
    let mut s = TcpStream::connect(w.addr).await.unwrap();
    s.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut s).await.starts_with("HTTP/1.1 200"));
    s
}

/// Waits until the server closes `stream` (end of file or reset), then returns.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

const SLOW_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nX-Slow: ";

/// Sends `start`, then one more byte every 100 ms until the server closes the connection;
/// returns when it did.
async fn trickle(mut stream: TcpStream, start: Vec<u8>) {
    stream.write_all(&start).await.unwrap();
    let (mut read, mut write) = stream.split();
    let writer = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b"a").await.is_err() {
                // Closed: the reader sees it too.
                std::future::pending::<()>().await;
            }
        }
    };
    let reader = async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        () = writer => {},
        () = reader => {},
    }
}

/// Asserts that `since` was about a second ago: the 1 s the tests set, give or take what a
/// busy machine adds.
fn about_a_second(since: Instant, what: &str) {
    let elapsed = since.elapsed();
    eprintln!("{what} after {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{what} after {elapsed:?}"
    );
}

fn limits(header_read_timeout: Duration) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout,
        ..ConnectionLimits::default()
    }
}

#[tokio::test]
async fn a_slow_header_client_is_cut_at_the_deadline_while_others_are_served() {
    let db = TestDb::new().await;
    let w = worker(&db, limits(Duration::from_secs(1))).await;
    let started = Instant::now();
    let slow = tokio::spawn(trickle(
        TcpStream::connect(w.addr).await.unwrap(),
        SLOW_HEAD.to_vec(),
    ));
    // Meanwhile, a whole request on another connection is answered at once.
    let asked = Instant::now();
    let mut other = TcpStream::connect(w.addr).await.unwrap();
    other.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut other).await.starts_with("HTTP/1.1 200"));
    let served_in = asked.elapsed();
    eprintln!("a whole request was answered in {served_in:?} while the slow head trickled");
    assert!(served_in < Duration::from_millis(500), "{served_in:?}");
    tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("the trickling client is cut")
        .unwrap();
    about_a_second(started, "the slow head was cut");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let db = TestDb::new().await;
    let w = worker(&db, limits(Duration::from_secs(1))).await;
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..5 {
        idle.push(served_connection(&w).await);
    }
    let answered = Instant::now();
    for stream in &mut idle {
        tokio::time::timeout(Duration::from_secs(10), closed_by_server(stream))
            .await
            .expect("an idle keep-alive connection is closed");
    }
    let after = answered.elapsed();
    eprintln!("5 idle keep-alive connections closed {after:?} after their answers");
    assert!(after < Duration::from_secs(3), "{after:?}");
}

#[tokio::test]
async fn the_cap_on_open_connections_holds() {
    let db = TestDb::new().await;
    let w = worker(
        &db,
        ConnectionLimits {
            max_connections: 3,
            ..limits(Duration::from_secs(60))
        },
    )
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(served_connection(&w).await);
    }
    // A fourth connection is not served while three are open...
    let mut fourth = TcpStream::connect(w.addr).await.unwrap();
    fourth.write_all(HEALTHZ).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), fourth.read(&mut buf)).await;
    assert!(early.is_err(), "answered past the cap: {early:?}");
    // ...and is as soon as one of them closes.
    drop(open.pop());
    let answer = tokio::time::timeout(Duration::from_secs(5), read_healthz(&mut fourth))
        .await
        .expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_stop_ends_within_its_grace_with_a_trickling_client_attached() {
    let db = TestDb::new().await;
    let w = worker(
        &db,
        ConnectionLimits {
            shutdown_grace: Duration::from_secs(1),
            ..limits(Duration::from_secs(60))
        },
    )
    .await;
    // A bounce whose body trickles: a request in flight, which hyper's graceful stop
    // waits for. Served once before, so surely accepted.
    let trickling = served_connection(&w).await;
    let head = format!(
        "POST /webhooks/bounce HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        w.auth()
    );
    let client = tokio::spawn(trickle(trickling, head.into_bytes()));
    let _idle = served_connection(&w).await;
    // The test's runtime has one thread, shared with the worker: the trickling client
    // writes its head as soon as this task waits, and the worker has read it (the socket
    // was ready first) by the time it answers a request on another connection.
    let _ = served_connection(&w).await;
    let asked = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), w.stop())
        .await
        .expect("the stop is bounded")
        .unwrap();
    about_a_second(asked, "stopped, a trickling client attached,");
    tokio::time::timeout(Duration::from_secs(5), client)
        .await
        .expect("the trickling client's connection is closed")
        .unwrap();
}

//! Load generator for the bounce MX (used by bench/smtp.sh; not a test).
//!
//! `--sessions N` SMTP sessions each send DSNs, one transaction after another (MAIL, RCPT
//! and DATA pipelined, as Postfix does), to signed VERP return paths of the subscribers
//! listed in `--uuids` (uniform, reproducible). Every DSN is unique (its Message-Id), as
//! real ones are, so each is recorded rather than taken for a retry; 30% are hard (5.1.1),
//! the rest soft (4.2.2). Closed loop by default; with `--rate R` messages start on a fixed
//! schedule (each taken by a free session), for latency at a given load. The latency is
//! DATA-to-reply: from the final dot sent to the reply read. Prints one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bounce_worker::smtp::verp::{Keys, Verp};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

mod bench_support;
use bench_support::Rng;

#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2525")]
    addr: String,
    #[arg(long)]
    key_file: std::path::PathBuf,
    /// One subscriber UUID per line.
    #[arg(long)]
    uuids: std::path::PathBuf,
    #[arg(long, default_value = "bounces.bench.test")]
    domain: String,
    #[arg(long, default_value = "b")]
    prefix: String,
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Messages per second, open loop (instead of the closed loop).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    refused: u64,
}

fn dsn(id: &str, recipient: &str, hard: bool) -> String {
    let (status, text) = match hard {
        true => (
            "5.1.1",
            "550 5.1.1 <x>: Recipient address rejected: User unknown",
        ),
        false => ("4.2.2", "452 4.2.2 Mailbox full"),
    };
    format!(
        "From: MAILER-DAEMON@mx.bench.test (Mail Delivery System)\r\n\
         To: {recipient}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-Id: <{id}@mx.bench.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.bench.test\r\n\r\n\
         Final-Recipient: rfc822; user@elsewhere.test\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; {text}\r\n\r\n--B--\r\n.\r\n"
    )
}

async fn reply(io: &mut BufReader<TcpStream>) -> Option<String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let last = line.as_bytes().get(3) != Some(&b'-');
        all.push_str(&line);
        if last {
            return Some(all);
        }
    }
}

struct Session {
    io: BufReader<TcpStream>,
}

impl Session {
    async fn open(addr: &str) -> Session {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).unwrap();
        let mut io = BufReader::new(tcp);
        reply(&mut io).await.expect("greeting");
        io.get_mut().write_all(b"EHLO load.test\r\n").await.unwrap();
        reply(&mut io).await.expect("EHLO");
        Session { io }
    }

    /// One transaction; the DATA-to-reply time when answered 250.
    async fn send(&mut self, rcpt: &str, message: &str) -> Option<Duration> {
        let head = format!("MAIL FROM:<>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
        self.io.get_mut().write_all(head.as_bytes()).await.ok()?;
        for _ in 0..3 {
            reply(&mut self.io).await?;
        }
        self.io.get_mut().write_all(message.as_bytes()).await.ok()?;
        let sent = Instant::now();
        let r = reply(&mut self.io).await?;
        r.starts_with("250").then(|| sent.elapsed())
    }
}

#[tokio::main]
async fn main() {
    let a = Arc::new(<Args as clap::Parser>::parse());
    let key = bounce_worker::smtp::cli::read_key(&a.key_file).unwrap();
    let keys = Arc::new(Keys::new(&key, None).unwrap());
    let uuids: Arc<Vec<uuid::Uuid>> = Arc::new(
        std::fs::read_to_string(&a.uuids)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse().unwrap())
            .collect(),
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let started = Instant::now();
    // Open loop: a ticket per scheduled message; sessions take them as they come free.
    let (tickets, ticket_rx) = async_channel(a.rate);
    let tasks: Vec<_> = (0..a.sessions)
        .map(|i| {
            let (a, keys, uuids, tally, ticket_rx) = (
                a.clone(),
                keys.clone(),
                uuids.clone(),
                tally.clone(),
                ticket_rx.clone(),
            );
            tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                let mut session = Session::open(&a.addr).await;
                let mut n = 0u64;
                loop {
                    if let Some(rx) = &ticket_rx {
                        if rx.lock().await.recv().await.is_none() {
                            break;
                        }
                    } else if Instant::now() >= deadline {
                        break;
                    }
                    n += 1;
                    let subscriber = uuids[(rng.next() % uuids.len() as u64) as usize];
                    let hard = rng.next() % 10 < 3;
                    let rcpt = keys.address(
                        &a.prefix,
                        &a.domain,
                        Verp {
                            subscriber,
                            campaign: None,
                        },
                    );
                    let id = format!("{i}.{n}.{}", rng.next());
                    let result = session
                        .send(&rcpt, &dsn(&id, "sender@bench.test", hard))
                        .await;
                    let mut t = tally.lock().await;
                    match result {
                        Some(d) => t.latencies_us.push(d.as_micros() as u64),
                        None => t.refused += 1,
                    }
                }
                let _ = session.io.get_mut().write_all(b"QUIT\r\n").await;
            })
        })
        .collect();
    if let (Some(rate), Some(tickets)) = (a.rate, tickets) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while Instant::now() < deadline {
            tick.tick().await;
            if tickets.send(()).await.is_err() {
                break;
            }
        }
        drop(tickets);
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut t = tally.lock().await;
    let counts = serde_json::json!({"sessions": a.sessions, "refused": t.refused});
    let line = bench_support::report(a.rate.is_some(), &mut t.latencies_us, seconds, counts);
    println!("{line}");
}

type Tickets = (
    Option<tokio::sync::mpsc::Sender<()>>,
    Option<Arc<Mutex<tokio::sync::mpsc::Receiver<()>>>>,
);

/// The open loop's schedule: a queue of tickets shared by the sessions.
fn async_channel(rate: Option<f64>) -> Tickets {
    match rate {
        None => (None, None),
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1 << 16);
            (Some(tx), Some(Arc::new(Mutex::new(rx))))
        }
    }
}

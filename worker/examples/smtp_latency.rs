//! Per-message latency of an SMTP server as one sender sees it (used by bench/relay.sh; not
//! a test): one session, `--messages` transactions one after another, each MAIL, RCPT and
//! DATA pipelined (as listmonk's mailer and Postfix do), then the message file and its final
//! dot. A message's latency runs from MAIL sent to the answer after the final dot read: the
//! whole transaction, so a relay's own upstream transaction is all inside it. Unloaded on
//! purpose: the added latency of a hop, not queueing. Prints one JSON object (milliseconds).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

#[derive(clap::Parser)]
struct Args {
    #[arg(long)]
    addr: String,
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// The message (LF or CRLF line ends; sent with CRLF, dot-stuffed).
    #[arg(long)]
    file: std::path::PathBuf,
    #[arg(long, default_value = "news@bench.test")]
    from: String,
    #[arg(long, default_value = "reader@bench.test")]
    to: String,
}

/// Reads one reply (all its lines); its code.
fn reply(r: &mut impl BufRead) -> std::io::Result<u16> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("the server closed the connection"));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("not a reply: {line:?}")));
        }
    }
}

fn expect(r: &mut impl BufRead, want: u16, what: &str) -> Result<(), String> {
    match reply(r) {
        Ok(code) if code == want => Ok(()),
        Ok(code) => Err(format!("{what}: {code}, wanted {want}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn main() -> Result<(), String> {
    let args: Args = clap::Parser::parse();
    let text = std::fs::read_to_string(&args.file).map_err(|e| e.to_string())?;
    let mut body = String::new();
    for line in text.lines() {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    let tcp = TcpStream::connect(&args.addr).map_err(|e| format!("{}: {e}", args.addr))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut w = tcp.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(tcp);
    expect(&mut r, 220, "greeting")?;
    w.write_all(b"EHLO latency.bench.test\r\n")
        .map_err(|e| e.to_string())?;
    expect(&mut r, 250, "EHLO")?;
    let envelope = format!(
        "MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\nDATA\r\n",
        args.from, args.to
    );
    let mut ms = Vec::with_capacity(args.messages);
    for _ in 0..args.messages {
        let t = Instant::now();
        w.write_all(envelope.as_bytes())
            .map_err(|e| e.to_string())?;
        expect(&mut r, 250, "MAIL")?;
        expect(&mut r, 250, "RCPT")?;
        expect(&mut r, 354, "DATA")?;
        w.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
        expect(&mut r, 250, "end of DATA")?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = w.write_all(b"QUIT\r\n");
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{{\"messages\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"mean_ms\":{:.3}}}",
        ms.len(),
        at(0.5),
        at(0.99),
        mean
    );
    Ok(())
}

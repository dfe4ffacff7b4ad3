//! DKIM as a sender's side signs and a receiver checks it (RFC 6376), by dkimpy (Debian's
//! python3-dkim, the library behind many MTAs' DKIM milters): a key pair made for the test,
//! a message signed with it, and the verification of what came out of the relay. The public
//! key a receiver would look up in DNS (`<selector>._domainkey.<domain>`) is handed to the
//! verifier instead, so no lookup leaves the machine.
//!
//! Not Stalwart's mail-auth: it turns on mail-parser's `full_encoding`, and Cargo unifies
//! features across the workspace's test build, so the classifier under test would no longer
//! be the one users run (it changed the corpus figures).

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;

pub const PYTHON: &str = "/usr/bin/python3";
pub const DOMAIN: &str = "sender.test";
pub const SELECTOR: &str = "news";

/// Why these tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    let found = Command::new(PYTHON)
        .args(["-c", "import dkim"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| {
        format!("{PYTHON} cannot import dkim (Debian: apt-get install python3-dkim; scripts/test.sh does it)")
    })
}

const SIGN: &str = "
import sys, dkim
key = open(sys.argv[1], 'rb').read()
message = sys.stdin.buffer.read()
headers = [h.encode() for h in sys.argv[4].split(',')]
signature = dkim.sign(message, sys.argv[2].encode(), sys.argv[3].encode(), key,
                      canonicalize=(b'simple', b'simple'), include_headers=headers)
sys.stdout.buffer.write(signature + message)
";

const VERIFY: &str = "
import sys, dkim
name, record = sys.argv[1].encode(), sys.argv[2].encode()
def txt(query, timeout=5):
    return record if query.rstrip(b'.') == name else None
print('pass' if dkim.verify(sys.stdin.buffer.read(), dnsfunc=txt) else 'fail')
";

/// A signing key and the TXT record that publishes its public half.
pub struct Key {
    dir: tempfile::TempDir,
    record: String,
}

impl Key {
    pub fn new() -> Key {
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem = private.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        std::fs::write(dir.path().join("key.pem"), pem.as_bytes()).unwrap();
        let public = private.to_public_key().to_public_key_der().unwrap();
        let record = format!(
            "v=DKIM1; k=rsa; p={}",
            base64::engine::general_purpose::STANDARD.encode(public.as_bytes())
        );
        Key { dir, record }
    }

    /// `message` (headers and body, CRLF lines, not dot-stuffed) with a `DKIM-Signature` in
    /// front, over `headers`. `simple/simple`: the strictest canonicalization, which any
    /// change of a signed header's bytes (even its folding) or of the body breaks.
    pub fn sign(&self, message: &[u8], headers: &[&str]) -> Vec<u8> {
        let key = self.dir.path().join("key.pem");
        python(
            &[
                SIGN,
                key.to_str().unwrap(),
                SELECTOR,
                DOMAIN,
                &headers.join(","),
            ],
            message,
        )
    }

    /// Whether a receiver finds `message`'s signature valid.
    pub fn verifies(&self, message: &[u8]) -> bool {
        let name = format!("{SELECTOR}._domainkey.{DOMAIN}");
        let out = python(&[VERIFY, &name, &self.record], message);
        match String::from_utf8_lossy(&out).trim() {
            "pass" => true,
            "fail" => false,
            other => panic!("dkimpy said {other:?}"),
        }
    }
}

/// Runs `args[0]` as a Python program with the other `args`, `input` on its stdin.
fn python(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The wire form of DATA (RFC 5321 §4.5.2): a line that starts with a dot gets another, and
/// the end marker follows.
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

/// The message back from its wire form (what a receiving MTA stores).
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let body = wire.strip_suffix(b".\r\n").expect("the end marker");
    let mut message = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    message
}

//! A real Postfix (Debian's), started by a test on loopback with its own configuration
//! directory, queue and log, never the system's mail service; stopped when dropped.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const POSTFIX: &str = "/usr/sbin/postfix";

/// Why Postfix tests cannot run here, if they cannot: Postfix is not installed, or this is
/// not root (its master process must start as root, then drops privileges).
pub fn unavailable() -> Option<String> {
    if !Path::new(POSTFIX).exists() {
        return Some(format!(
            "{POSTFIX} is not installed (Debian: apt-get install postfix; .ci/run does it)"
        ));
    }
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        return Some("Postfix's master must be started by root".into());
    }
    None
}

pub struct Postfix {
    pub smtpd: SocketAddr,
    config: PathBuf,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const MASTER_CF: &str = "\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
";

impl Postfix {
    /// Starts Postfix with `transports` (`domain` → `host:port`, its smtp client's next
    /// hop) and `main_extra` lines added to main.cf. Mail to `local.test` is delivered
    /// locally, where no user exists: each such message bounces, with a real DSN.
    pub fn start(transports: &[(&str, SocketAddr)], main_extra: &str) -> Postfix {
        Postfix::start_with(transports, main_extra, "")
    }

    /// [`Postfix::start`] with `master_extra` lines added to master.cf (e.g. `tlsmgr`, which
    /// smtpd needs to offer STARTTLS).
    pub fn start_with(
        transports: &[(&str, SocketAddr)],
        main_extra: &str,
        master_extra: &str,
    ) -> Postfix {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        // Postfix's unprivileged processes must reach the queue below it.
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let config = root.join("etc");
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(root.join("data"))
            .status()
            .unwrap();
        assert!(chown.success(), "chown postfix data");
        let port = free_port();
        let transport_map: Vec<String> = transports
            .iter()
            .map(|(domain, addr)| format!("{domain}=smtp:[{}]:{}", addr.ip(), addr.port()))
            .collect();
        let r = root.display();
        let base = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {r}/queue\n\
             data_directory = {r}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = mta.test\n\
             mydomain = test\n\
             myorigin = test\n\
             mydestination = local.test\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             mynetworks = 127.0.0.0/8\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             maillog_file_prefixes = {r}\n\
             maillog_file = {r}/maillog\n\
             smtp_tls_security_level = none\n\
             queue_run_delay = 1s\n\
             transport_maps = inline:{{ {} }}\n",
            transport_map.join(", ")
        );
        std::fs::write(config.join("main.cf"), main_cf(&base, main_extra)).unwrap();
        std::fs::write(
            config.join("master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}{master_extra}"),
        )
        .unwrap();
        let postfix = Postfix {
            smtpd: SocketAddr::from(([127, 0, 0, 1], port)),
            config,
            root,
            _dir: dir,
        };
        let out = postfix.run(POSTFIX, &["start"]);
        assert!(
            out.status.success(),
            "postfix start: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            postfix.log()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(postfix.smtpd).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix never listened:\n{}",
                postfix.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        postfix
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new(program)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Postfix's own log of this instance.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("maillog")).unwrap_or_default()
    }

    /// Delivers the deferred mail now (`postqueue -f`).
    pub fn flush(&self) {
        let out = self.run("/usr/sbin/postqueue", &["-f"]);
        assert!(
            out.status.success(),
            "postqueue -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The queue's messages, one JSON object each (`postqueue -j`).
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = self.run("/usr/sbin/postqueue", &["-j"]);
        assert!(
            out.status.success(),
            "postqueue -j: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // A failed test takes this instance's folder with it: its log is the one witness of
        // what Postfix did.
        if std::thread::panicking() {
            eprintln!("--- Postfix's log ({}):\n{}", self.smtpd, self.log());
        }
        let master = std::fs::read_to_string(self.root.join("queue/pid/master.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        // `postfix stop`, bounded: a Postfix that hangs must fail its test, not hold it.
        let stop = Command::new(POSTFIX)
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        if let Ok(mut stop) = stop
            && !exited_within(&mut stop, Duration::from_secs(20))
        {
            eprintln!("postfix stop did not finish within 20 s; killed");
            kill(-(stop.id() as i32));
            let _ = stop.wait();
        }
        // The queue folder goes with the test: the master and its children must be gone.
        if let Some(pid) = master {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("Postfix's master {pid} still runs after postfix stop; killed");
                for child in children(pid) {
                    kill(child as i32);
                }
                kill(pid as i32);
            }
        }
    }
}

/// main.cf: `base`, then `extra`, where a parameter of `extra` replaces the one of `base`.
/// A parameter given twice makes every Postfix process log a warning at start, and those
/// warnings can fill the log socket's queue (`net.unix.max_dgram_qlen`, 10 by default)
/// before postlogd reads it: postlogd's own warning then waits on its own socket, and with
/// it every process that logs, smtpd before its greeting. That was the relay tests' hang.
pub fn main_cf(base: &str, extra: &str) -> String {
    let name = |line: &str| line.split('=').next().map(|n| n.trim().to_owned());
    let replaced: Vec<String> = extra.lines().filter_map(name).collect();
    let mut cf: Vec<&str> = base
        .lines()
        .filter(|line| name(line).is_none_or(|n| !replaced.contains(&n)))
        .collect();
    cf.extend(extra.lines().filter(|l| !l.trim().is_empty()));
    let mut text = cf.join("\n");
    text.push('\n');
    text
}

fn exited_within(child: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// SIGKILL to a process, or to a process group when `pid` is negative.
fn kill(pid: i32) {
    // SAFETY: kill(2) takes any pid and signal number; it has no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// The processes whose parent is `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                // The parent is the second field after the command, which is in parentheses.
                .and_then(|stat| {
                    stat.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

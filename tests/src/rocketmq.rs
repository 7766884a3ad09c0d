//! RocketMQ processes for end-to-end tests: `twinmq serve rocketmq-namesrv` and
//! `rocketmq-broker` on 127.0.0.1 with ephemeral ports, and a plain blocking remoting connection
//! for speaking the wire byte by byte.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::twinmq_binary;

/// GET_ROUTEINFO_BY_TOPIC.
const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
/// The topic a broker registers for auto-creation; its route exists once the broker registered.
const DEFAULT_TOPIC: &str = "TBW102";
/// How long a broker or a topic may take to appear in the nameserver's routes.
const REGISTRATION_WAIT: Duration = Duration::from_secs(30);

/// A `twinmq serve rocketmq-namesrv` or `rocketmq-broker` process, killed when dropped.
pub struct RocketmqServer {
    child: std::process::Child,
    /// `host:port` it listens on (a broker registers this address with its nameserver).
    pub addr: String,
    /// A broker's data directory (empty for a nameserver).
    pub data_dir: PathBuf,
    stderr_log: PathBuf,
}

impl RocketmqServer {
    /// Starts a nameserver on an ephemeral port; its log goes to `log_dir/namesrv.stderr.log`.
    pub fn namesrv(log_dir: &Path) -> Self {
        let log = log_dir.join("namesrv.stderr.log");
        Self::spawn("rocketmq-namesrv", &["--listen", "127.0.0.1:0"], PathBuf::new(), log)
    }

    /// Starts a broker on an ephemeral port, registering with `namesrv`, storing in
    /// `data_dir`, with `extra` flags (`--message-delay-level`, …); its log goes to
    /// `<data_dir>.stderr.log`.
    pub fn broker(namesrv: &str, data_dir: &Path, extra: &[&str]) -> Self {
        Self::broker_at(namesrv, "127.0.0.1:0", data_dir, extra)
    }

    /// As [`RocketmqServer::broker`], listening on `listen` (a restart on the same address).
    pub fn broker_at(namesrv: &str, listen: &str, data_dir: &Path, extra: &[&str]) -> Self {
        let data = data_dir.to_str().expect("a UTF-8 data dir");
        let mut args = vec!["--namesrv", namesrv, "--listen", listen, "--data-dir", data];
        args.extend_from_slice(extra);
        let log = data_dir.with_extension("stderr.log");
        Self::spawn("rocketmq-broker", &args, data_dir.to_owned(), log)
    }

    fn spawn(role: &str, args: &[&str], data_dir: PathBuf, stderr_log: PathBuf) -> Self {
        let stderr = std::fs::File::create(&stderr_log).expect("server log file");
        let mut child = std::process::Command::new(twinmq_binary())
            .args(["serve", role])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("twinmq serve {role} starts: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("server prints its address");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|addr| addr.contains(':'))
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("{role} did not start: {line:?}\n{log}")
            })
            .to_owned();
        Self { child, addr, data_dir, stderr_log }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("server exits")
    }

    /// Kills the server with SIGKILL (no flush, no checkpoint).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for RocketmqServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A nameserver and one master broker registered with it: what a RocketMQ client needs.
pub struct RocketmqCluster {
    /// The nameserver; clients start from `namesrv.addr`.
    pub namesrv: RocketmqServer,
    /// The broker.
    pub broker: RocketmqServer,
}

impl RocketmqCluster {
    /// Starts both in `dir` (the broker stores in `dir/broker`) with `broker_flags`, and waits
    /// until the nameserver routes the default topic to the broker, so that a producer's first
    /// send to a new topic finds it.
    pub fn start(dir: &Path, broker_flags: &[&str]) -> Self {
        let namesrv = RocketmqServer::namesrv(dir);
        let broker = RocketmqServer::broker(&namesrv.addr, &dir.join("broker"), broker_flags);
        let cluster = Self { namesrv, broker };
        cluster.wait_until_routed(DEFAULT_TOPIC);
        cluster
    }

    /// Waits until the nameserver routes `topic` to the broker: a topic the broker created on
    /// a first send reaches the nameserver a moment later, and a consumer that looks it up
    /// before then only looks again 30 s later.
    pub fn wait_until_routed(&self, topic: &str) {
        let deadline = Instant::now() + REGISTRATION_WAIT;
        loop {
            let mut connection = RemotingConnection::connect(&self.namesrv.addr);
            let reply = connection.request(GET_ROUTEINFO_BY_TOPIC, &[("topic", topic)], &[]);
            if reply.code == 0 && String::from_utf8_lossy(&reply.body).contains(&self.broker.addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} was not routed within {REGISTRATION_WAIT:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The nameserver's address (`namesrvAddr`).
    pub fn namesrv_addr(&self) -> String {
        self.namesrv.addr.clone()
    }

    /// Both servers' logs, for failure messages.
    pub fn logs(&self) -> String {
        format!("--- namesrv ---\n{}\n--- broker ---\n{}", self.namesrv.log(), self.broker.log())
    }
}

/// One remoting command as read off the wire (JSON header).
#[derive(Debug, Clone, Default)]
pub struct RemotingReply {
    /// Response (or request) code.
    pub code: i32,
    /// The request id it answers.
    pub opaque: i32,
    /// Bit 0: response; bit 1: oneway.
    pub flag: i32,
    /// Free text.
    pub remark: Option<String>,
    /// extFields, every value a string.
    pub ext: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

/// A blocking remoting connection that speaks JSON headers, the way rocketmq-client-rust does.
pub struct RemotingConnection {
    stream: TcpStream,
    opaque: i32,
}

impl RemotingConnection {
    /// Connects, with a 30 s read timeout (no reply within it fails the test).
    pub fn connect(addr: &str) -> Self {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        Self { stream, opaque: 0 }
    }

    /// Sends a request and waits for the response with its opaque (skipping the server's own
    /// requests and other responses on the way).
    pub fn request(&mut self, code: i32, ext: &[(&str, &str)], body: &[u8]) -> RemotingReply {
        self.opaque += 1;
        let opaque = self.opaque;
        self.send_raw(&request_frame(code, opaque, 0, ext, body));
        loop {
            let reply = self.read_command().expect("the server answers");
            if reply.flag & 1 == 1 && reply.opaque == opaque {
                return reply;
            }
        }
    }

    /// Sends a oneway request (no response comes back).
    pub fn oneway(&mut self, code: i32, ext: &[(&str, &str)], body: &[u8]) {
        self.opaque += 1;
        let frame = request_frame(code, self.opaque, 2, ext, body);
        self.send_raw(&frame);
    }

    /// Writes bytes as they are; errors (the server already closed) are ignored.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads one frame with a JSON header; `None` when the server closed the connection.
    pub fn read_command(&mut self) -> Option<RemotingReply> {
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).ok()?;
        let mut frame = vec![0u8; u32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut frame).ok()?;
        let mark = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
        let header_len = (mark & 0x00ff_ffff) as usize;
        let header: serde_json::Value = serde_json::from_slice(frame.get(4..4 + header_len)?)
            .unwrap_or_else(|e| panic!("the server sent an invalid JSON header: {e}"));
        let int = |key: &str| header[key].as_i64().and_then(|n| i32::try_from(n).ok());
        let ext = header["extFields"]
            .as_object()
            .map(|fields| {
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Some(RemotingReply {
            code: int("code")?,
            opaque: int("opaque")?,
            flag: int("flag").unwrap_or(0),
            remark: header["remark"].as_str().map(str::to_owned),
            ext,
            body: frame[4 + header_len..].to_vec(),
        })
    }

    /// Whether the server closed this connection: a read returns end of stream or a reset
    /// (nothing within the read timeout means it is still open).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(n) => n == 0,
            Err(e) => {
                !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            }
        }
    }
}

/// A whole request frame with a JSON header, as rocketmq-client-rust writes it.
pub fn request_frame(
    code: i32,
    opaque: i32,
    flag: i32,
    ext: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let ext: serde_json::Map<String, serde_json::Value> =
        ext.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    let header = serde_json::json!({
        "code": code, "language": "RUST", "version": 474, "opaque": opaque, "flag": flag,
        "remark": null, "extFields": ext, "serializeTypeCurrentRPC": "JSON",
    });
    raw_frame(0, &serde_json::to_vec(&header).expect("JSON"), body)
}

/// A frame around any header bytes: `u32 total | u32 (type << 24 | header length) | header |
/// body`.
pub fn raw_frame(serialize_type: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    let total = u32::try_from(4 + header.len() + body.len()).expect("frame under 4 GiB");
    let mark = (u32::from(serialize_type) << 24)
        | (u32::try_from(header.len()).expect("header under 16 MiB") & 0x00ff_ffff);
    let mut frame = total.to_be_bytes().to_vec();
    frame.extend_from_slice(&mark.to_be_bytes());
    frame.extend_from_slice(header);
    frame.extend_from_slice(body);
    frame
}

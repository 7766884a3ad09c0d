//! Helpers for twinmq's end-to-end tests: the real `twinmq` binary, run as a process.

use std::path::PathBuf;

pub mod rocketmq;
pub use rocketmq::{RemotingConnection, RemotingReply, RocketmqCluster, RocketmqServer};

/// The `twinmq` binary built alongside the tests (`target/<profile>/twinmq`).
///
/// Test binaries live in `target/<profile>/deps/`; the workspace's one binary sits one level up.
pub fn twinmq_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary knows its own path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let binary = profile_dir.join("twinmq");
    assert!(
        binary.exists(),
        "{} is missing: build it first with `cargo build --workspace --all-targets`",
        binary.display()
    );
    binary
}

/// A `twinmq serve kafka` process on 127.0.0.1 with its own data dir, killed when dropped.
pub struct KafkaServer {
    child: std::process::Child,
    /// `host:port` clients bootstrap from.
    pub bootstrap: String,
    /// The data directory (kept for restarts).
    pub data_dir: PathBuf,
    stderr_log: PathBuf,
}

impl KafkaServer {
    /// Starts a single-node broker on an ephemeral port with `extra` flags and waits until it
    /// listens (it prints its address once bound).
    pub fn start(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_as("kafka", data_dir, "127.0.0.1:0", extra)
    }

    /// Starts `twinmq serve <role>` (`kafka` or `kafka-controller`) listening on `listen`.
    pub fn start_as(role: &str, data_dir: &std::path::Path, listen: &str, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let stderr_log = data_dir.with_extension("stderr.log");
        let stderr = std::fs::File::create(&stderr_log).expect("broker log file");
        let mut child = std::process::Command::new(twinmq_binary())
            .args(["serve", role, "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("twinmq serve kafka starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("broker prints its address");
        let bootstrap = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|addr| addr.contains(':'))
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("broker did not start: {line:?}\n{log}")
            })
            .to_owned();
        Self { child, bootstrap, data_dir: data_dir.to_owned(), stderr_log }
    }

    /// Stops the broker with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("broker exits")
    }

    /// Kills the broker with SIGKILL (no flush, no checkpoint).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the test virtualenv `./test.sh` creates (`target/test-venv`), with the real
/// clients of `tests/clients/requirements.txt` installed.
pub fn venv_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/test-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh, which installs the real clients the tests drive",
        python.display()
    );
    python
}

/// A client script under `tests/clients/`.
pub fn client_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients").join(name)
}

/// Runs a client script with the venv's Python and returns its last stdout line (JSON);
/// panics with its output when it fails.
pub fn run_python_client(script: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(venv_python())
        .arg(client_script(script))
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{script} {args:?} failed:\n{stdout}\n{stderr}");
    stdout.lines().last().unwrap_or_default().to_owned()
}

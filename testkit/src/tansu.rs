//! A Tansu broker process (Kafka protocol, SQLite storage) on a free loopback port, for
//! the benchmark harness and the integration tests. `infra/install-broker.sh` installs it.
//!
//! Apache Kafka cannot be installed on the machines this project is built on; Tansu 0.6.0 can,
//! and speaks the Kafka protocol to librdkafka (see `infra/install-broker.sh`). It is run in its
//! own working directory, which holds its SQLite database and its log.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Script adding the index Tansu 0.6's SQLite schema lacks on record headers (see the script).
const INDEX_HEADERS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/tansu-index-headers.py");

/// A running (or killed) Tansu broker. Killed when dropped.
pub struct TansuBroker {
    /// Working directory: the SQLite database and the broker's log live here.
    dir: PathBuf,
    /// The loopback port it listens on, kept across restarts.
    port: u16,
    /// The broker process while it runs.
    child: Option<Child>,
    /// The address it tells clients to connect to, when not its own (a TLS proxy in front of it).
    advertised: Option<String>,
    /// Whether clients must authenticate (SASL/SCRAM), after [`require_scram`](Self::require_scram).
    authentication: bool,
}

impl TansuBroker {
    /// Starts a broker working in `dir` (created if missing) and waits until it accepts
    /// connections.
    pub fn start(dir: &Path) -> Result<TansuBroker, String> {
        Self::start_advertising(dir, None)
    }

    /// Starts a broker that tells clients, in its metadata, to connect to `advertised`
    /// (`host:port`) rather than to itself: the address of a proxy in front of it, such as the
    /// TLS terminator of the Kafka TLS tests.
    pub fn start_advertising(dir: &Path, advertised: Option<&str>) -> Result<TansuBroker, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let advertised = advertised.map(str::to_owned);
        let mut broker = TansuBroker { dir: dir.to_owned(), port, child: None, advertised, authentication: false };
        broker.restart()?;
        Ok(broker)
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the broker with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port and database, and waits until it listens.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Err("kill the broker before restarting it".to_owned());
        }
        let log_path = self.dir.join("broker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let stderr = log.try_clone().map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let listener = format!("tcp://{}", self.bootstrap());
        let advertised = format!("tcp://{}", self.advertised.as_deref().unwrap_or(&self.bootstrap()));
        let child = Command::new(binary()?)
            .current_dir(&self.dir)
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &advertised])
            .args(["--storage-engine", "sqlite://broker.db"])
            .args(self.authentication.then_some("--authentication"))
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start tansu: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.bootstrap()).is_err() {
            if Instant::now() > deadline {
                return Err(format!("tansu did not listen within 20 s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let indexed = Command::new("python3").arg(INDEX_HEADERS_SCRIPT).arg(self.dir.join("broker.db")).status();
        match indexed {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("{INDEX_HEADERS_SCRIPT} failed ({status})")),
            Err(error) => Err(format!("cannot run python3 {INDEX_HEADERS_SCRIPT}: {error}")),
        }
    }

    /// Creates SCRAM-SHA-512 users (name, password) and restarts the broker requiring every
    /// client to authenticate as one of them. (Tansu only takes new users from a client while
    /// authentication is off; these are test users, so their passwords may go on its command line.)
    pub fn require_scram(&mut self, users: &[(&str, &str)]) -> Result<(), String> {
        let broker = format!("tcp://{}", self.bootstrap());
        for (name, password) in users {
            let status = Command::new(binary()?)
                .args(["user", "create", "--broker", &broker, "--mechanism", "scram512", name, password])
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("cannot run tansu user create: {e}"))?;
            if !status.success() {
                return Err(format!("tansu user create {name} failed ({status})"));
            }
        }
        self.kill();
        self.authentication = true;
        self.restart()
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `tansu` binary: `TANSU_BIN`, else the first on `PATH`, else `~/.cargo/bin/tansu`.
pub fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return Ok(path.into());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin")))
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "the Tansu broker is not installed: run infra/install-broker.sh".to_owned())
}

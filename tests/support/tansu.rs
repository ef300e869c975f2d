//! A real Kafka-protocol broker process for integration tests: Tansu 0.6.0 with SQLite storage
//! in a temporary directory, on a free loopback port. `infra/install-broker.sh` installs it.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rdkafka::ClientConfig;

/// A running (or killed) Tansu broker. Killed when dropped.
pub struct Tansu {
    /// Working directory: the SQLite database and the broker's log live here.
    dir: tempfile::TempDir,
    /// The loopback port it listens on, kept across restarts.
    port: u16,
    /// The broker process while it runs.
    child: Option<Child>,
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Tansu {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut broker = Tansu { dir: tempfile::tempdir().unwrap(), port, child: None };
        broker.restart();
        broker
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client configuration for this broker.
    pub fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", self.bootstrap());
        client
    }

    /// Kills the broker with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker (again) on the same port and database.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the broker before restarting it");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("broker.log")).unwrap();
        let listener = format!("tcp://{}", self.bootstrap());
        let child = Command::new(tansu_binary())
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", "sqlite://broker.db"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.bootstrap()).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        // Tansu 0.6 fetches record headers by a full table scan; see the script.
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/tansu-index-headers.py");
        let indexed = Command::new("python3").arg(script).arg(self.dir.path().join("broker.db")).status();
        assert!(indexed.is_ok_and(|status| status.success()), "cannot index Tansu's header table");
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin")))
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file());
    on_path.expect("the Tansu broker is needed for integration tests: run infra/install-broker.sh")
}

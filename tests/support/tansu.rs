//! A real Kafka-protocol broker process for integration tests: [`sluice_testkit::tansu::TansuBroker`]
//! (Tansu 0.6.0 with SQLite storage) in a temporary directory. `infra/install-broker.sh`
//! installs it.

use rdkafka::ClientConfig;
use sluice_testkit::tansu::TansuBroker;

/// A running (or killed) Tansu broker in a temporary directory. Killed when dropped.
pub struct Tansu {
    /// The broker; declared first so it is killed before its directory is removed.
    broker: TansuBroker,
    /// Working directory of the broker, removed when the test ends.
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Tansu {
        let dir = tempfile::tempdir().unwrap();
        let broker = TansuBroker::start(dir.path()).unwrap_or_else(|error| panic!("{error}"));
        Tansu { broker, _dir: dir }
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    /// A client configuration for this broker.
    pub fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", self.bootstrap());
        client
    }

    /// Kills the broker with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.broker.kill();
    }

    /// Starts the broker (again) on the same port and database.
    pub fn restart(&mut self) {
        self.broker.restart().unwrap_or_else(|error| panic!("{error}"));
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        self.broker.log()
    }
}

//! The real binaries as child processes: `hyphae serve` on a free port with its own data
//! directory, and `hyphae-node` workers. Their logs go to files in the data directory and are
//! printed when a test fails. Killing is SIGKILL: nothing gets to clean up.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyphae_proto::Address;

use super::bin;

pub struct RelayProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub url: String,
    pub data: PathBuf,
    pub api_key: String,
    args: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

fn free_port(ip: std::net::IpAddr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).expect("binding a free port");
    listener.local_addr().expect("bound")
}

fn log_file(dir: &Path, name: &str) -> File {
    File::options().create(true).append(true).open(dir.join(name)).expect("opening a log file")
}

impl RelayProcess {
    /// A relay in a fresh temporary data directory, with one API key, ready to serve.
    pub fn start(args: &[&str]) -> RelayProcess {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut relay = RelayProcess::start_in(dir.path(), args);
        relay._dir = Some(dir);
        relay
    }

    /// A relay in a fresh data directory serving all-MiniLM-L6-v2 (from the wheel `cargo xtask
    /// test` names in `HYPHAE_MINILM_WHEEL`), planned into `shards` shards.
    pub fn start_with_model(shards: u32, args: &[&str]) -> RelayProcess {
        Self::start_with_model_on(std::net::Ipv4Addr::LOCALHOST.into(), shards, args)
    }

    /// [`Self::start_with_model`], listening on `ip` (a [`super::Lan`]'s gateway, say).
    pub fn start_with_model_on(ip: std::net::IpAddr, shards: u32, args: &[&str]) -> RelayProcess {
        let wheel = std::env::var("HYPHAE_MINILM_WHEEL").unwrap_or_else(|_| {
            panic!("HYPHAE_MINILM_WHEEL is not set: run the model tests through `cargo xtask test`")
        });
        let dir = tempfile::tempdir().expect("a temporary directory");
        let output = Command::new(bin("hyphae"))
            .args(["model", "add", &wheel, "--name", "all-MiniLM-L6-v2", "--shards", &shards.to_string(), "--data"])
            .arg(dir.path())
            .output()
            .expect("running hyphae model add");
        assert!(output.status.success(), "hyphae model add failed: {}", String::from_utf8_lossy(&output.stderr));
        let mut relay = RelayProcess::start_in_on(dir.path(), args, ip);
        relay._dir = Some(dir);
        relay
    }

    /// A relay on `data`, creating its API key first.
    pub fn start_in(data: &Path, args: &[&str]) -> RelayProcess {
        Self::start_in_on(data, args, std::net::Ipv4Addr::LOCALHOST.into())
    }

    fn start_in_on(data: &Path, args: &[&str], ip: std::net::IpAddr) -> RelayProcess {
        let output = Command::new(bin("hyphae"))
            .args(["keys", "create", "--name", "tests", "--grant", "1000000", "--data"])
            .arg(data)
            .stderr(Stdio::null())
            .output()
            .expect("running hyphae keys create");
        assert!(output.status.success(), "hyphae keys create failed: {output:?}");
        let api_key = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_owned();
        let addr = free_port(ip);
        let mut relay = RelayProcess {
            child: None,
            addr,
            url: format!("http://{addr}"),
            data: data.to_owned(),
            api_key,
            args: args.iter().map(|s| s.to_string()).collect(),
            _dir: None,
        };
        relay.spawn();
        relay
    }

    fn spawn(&mut self) {
        let child = Command::new(bin("hyphae"))
            .args(["serve", "--listen", &self.addr.to_string(), "--data"])
            .arg(&self.data)
            .args(&self.args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(log_file(&self.data, "relay.log"))
            .stderr(log_file(&self.data, "relay.log"))
            .spawn()
            .expect("starting hyphae serve");
        self.child = Some(child);
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("relay exited early ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("relay did not listen within 30 s:\n{}", self.log());
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the relay again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("relay.log")).unwrap_or_default()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("---- relay log (last 80 lines) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A native worker process.
pub struct NodeProcess {
    child: Option<Child>,
    pub key_file: PathBuf,
    log: PathBuf,
}

impl NodeProcess {
    /// Starts `hyphae-node` against `relay`, with a key file `name.key` in `dir` (created on first
    /// start, so a restarted worker keeps its identity).
    pub fn start(relay: &RelayProcess, dir: &Path, name: &str, beneficiary: Option<Address>) -> NodeProcess {
        NodeProcess::start_with_env(relay, dir, name, beneficiary, &[])
    }

    /// [`NodeProcess::start`] with extra environment variables (a driver's settings).
    pub fn start_with_env(
        relay: &RelayProcess,
        dir: &Path,
        name: &str,
        beneficiary: Option<Address>,
        env: &[(&str, &str)],
    ) -> NodeProcess {
        Self::spawn(Command::new(bin("hyphae-node")), relay, dir, name, beneficiary, env, &[])
    }

    /// A worker with extra flags.
    pub fn start_with_args(relay: &RelayProcess, dir: &Path, name: &str, args: &[&str]) -> NodeProcess {
        Self::spawn(Command::new(bin("hyphae-node")), relay, dir, name, None, &[], args)
    }

    /// A worker in network namespace `ns` (see [`super::Lan`]), with extra flags.
    pub fn start_in_namespace(relay: &RelayProcess, dir: &Path, name: &str, ns: &str, args: &[&str]) -> NodeProcess {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(bin("hyphae-node"));
        Self::spawn(command, relay, dir, name, None, &[], args)
    }

    fn spawn(
        mut command: Command,
        relay: &RelayProcess,
        dir: &Path,
        name: &str,
        beneficiary: Option<Address>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> NodeProcess {
        let key_file = dir.join(format!("{name}.key"));
        let log = dir.join(format!("{name}.log"));
        command.args(["--relay", &relay.url, "--key"]).arg(&key_file).args(args);
        if let Some(b) = beneficiary {
            command.args(["--beneficiary", &b.to_string()]);
        }
        let child = command
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env.iter().copied())
            .stdout(log_file(dir, &format!("{name}.log")))
            .stderr(log_file(dir, &format!("{name}.log")))
            .spawn()
            .expect("starting hyphae-node");
        NodeProcess { child: Some(child), key_file, log }
    }

    /// The worker's address, once its key file exists.
    pub fn address(&self) -> Address {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.key_file)
                && let Ok(bytes) = hex::decode(text.trim())
                && let Ok(key) = hyphae_proto::SecretKey::from_bytes(&bytes)
            {
                return key.address();
            }
            assert!(Instant::now() < deadline, "worker key file never appeared:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process freezes where it is, its socket open and its leases held.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`NodeProcess::freeze`].
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the worker is running");
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("running kill");
        assert!(status.success(), "kill {signal} failed");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("---- {} (last 30 lines) ----", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

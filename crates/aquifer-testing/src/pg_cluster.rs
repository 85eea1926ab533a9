//! [`PrivatePgCluster`]: a replicated PostgreSQL 15 cluster of a test's own: a primary and streaming replicas
//! made with `pg_basebackup` over physical replication slots, each with its own data directory and free port
//! on 127.0.0.1, all in one temporary directory.
//!
//! The servers are started with `pg_ctl` (which waits until each accepts connections) and run as the
//! `postgres` user when the tests run as root, as [`PrivatePostgres`](crate::PrivatePostgres) does. The
//! cluster can be crashed and failed over node by node (`pg_ctl stop -m immediate`, `pg_ctl promote`); when
//! the handle is dropped every node still running is stopped immediately, killed by the PID in its
//! `postmaster.pid` if that fails, and the directory removed. scripts/pg-replicas.sh starts the same cluster
//! by hand.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::private::{OwnedDir, PrivateServerError, START_TIMEOUT, free_port};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SCRIPT: &str = "scripts/dev-services.sh";

fn error(message: impl Into<String>) -> PrivateServerError {
    PrivateServerError::new(message)
}

/// One server of the cluster.
#[derive(Debug)]
struct Node {
    data: PathBuf,
    port: u16,
    log: PathBuf,
    running: bool,
}

/// A PostgreSQL 15 primary with streaming replicas, private to a test. Node 0 starts as the primary; nodes
/// 1.. are its replicas, each on a physical replication slot `replica_N`.
///
/// ```no_run
/// let mut cluster = aquifer_testing::PrivatePgCluster::start(2).unwrap();
/// let url = cluster.url(); // postgres://postgres@127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2/test?sslmode=disable
/// cluster.crash(0).unwrap(); // the primary dies
/// cluster.promote(1).unwrap(); // a replica takes over
/// ```
#[derive(Debug)]
pub struct PrivatePgCluster {
    nodes: Vec<Node>,
    owner: Option<(u32, u32)>,
    // Declared last so it is removed after `Drop` has stopped the nodes.
    dir: OwnedDir,
}

impl PrivatePgCluster {
    /// Creates the primary and `replicas` streaming replicas and starts them all; returns once every replica
    /// streams from the primary (each step bounded by [`START_TIMEOUT`]).
    pub fn start(replicas: usize) -> Result<Self, PrivateServerError> {
        let owner = crate::private::run_as_user("postgres")?;
        let dir = OwnedDir::new("pg-cluster", owner)?;
        let mut cluster = PrivatePgCluster { nodes: Vec::new(), owner, dir };
        cluster.init_primary()?;
        for n in 1..=replicas {
            cluster.add_replica(n)?;
        }
        cluster.wait_streaming(replicas)?;
        Ok(cluster)
    }

    fn node(&self, i: usize) -> Result<&Node, PrivateServerError> {
        self.nodes.get(i).ok_or_else(|| error(format!("the cluster has no node {i}")))
    }

    fn init_primary(&mut self) -> Result<(), PrivateServerError> {
        let data = self.dir.path.join("node0");
        let log = self.dir.path.join("node0.log");
        let mut initdb = self.pg_command("initdb");
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb", START_TIMEOUT)?;
        let port = free_port();
        // Settings a replicated test cluster needs; fsync off as on the other private servers (tests, not data).
        let conf = format!(
            "\n# aquifer test cluster\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nwal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\nhot_standby = on\n\
             hot_standby_feedback = on\nwal_receiver_status_interval = 1s\nmax_connections = 200\n",
            self.dir.path.display()
        );
        append(&data.join("postgresql.conf"), &conf)?;
        self.nodes.push(Node { data, port, log, running: false });
        self.start_node(0)?;
        self.psql(0, "postgres", "CREATE DATABASE test")?;
        Ok(())
    }

    fn add_replica(&mut self, n: usize) -> Result<(), PrivateServerError> {
        let data = self.dir.path.join(format!("node{n}"));
        let log = self.dir.path.join(format!("node{n}.log"));
        let slot = format!("replica_{n}");
        self.create_slot(0, &slot)?;
        let mut backup = self.pg_command("pg_basebackup");
        backup
            .args(["-h", "127.0.0.1", "-p", &self.nodes[0].port.to_string(), "-U", "postgres", "-D"])
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "-S", &slot, "--no-sync"]);
        run(backup, "pg_basebackup", START_TIMEOUT)?;
        let port = free_port();
        append(&data.join("postgresql.conf"), &format!("\nport = {port}\n"))?;
        self.nodes.push(Node { data, port, log, running: false });
        self.start_node(n)
    }

    /// Waits until `replicas` replicas stream from node 0.
    fn wait_streaming(&self, replicas: usize) -> Result<(), PrivateServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let n: usize = self
                .psql(0, "postgres", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")?
                .trim()
                .parse()
                .unwrap_or(0);
            if n >= replicas {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(error(format!("only {n} of {replicas} replicas stream after {START_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pg_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(Path::new(PG_BIN).join(program));
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd.stdin(Stdio::null()).env("PGCONNECT_TIMEOUT", "5");
        cmd
    }

    /// Starts node `i` (after [`crash`](Self::crash) or [`stop`](Self::stop)); returns once it accepts
    /// connections.
    pub fn start_node(&mut self, i: usize) -> Result<(), PrivateServerError> {
        let node = self.node(i)?;
        let mut ctl = self.pg_command("pg_ctl");
        ctl.arg("-D").arg(&node.data).arg("-l").arg(&node.log).args(["-w", "-t", "60", "start"]);
        run(ctl, &format!("pg_ctl start (node {i})"), START_TIMEOUT)
            .map_err(|e| error(format!("{e}; server log: {}", tail(&node.log))))?;
        self.nodes[i].running = true;
        Ok(())
    }

    /// Stops node `i` at once, as a crash would (`pg_ctl stop -m immediate`: every process ends, no
    /// checkpoint; sessions see their connection drop).
    pub fn crash(&mut self, i: usize) -> Result<(), PrivateServerError> {
        self.stop_mode(i, "immediate")
    }

    /// Stops node `i` cleanly (`pg_ctl stop -m fast`).
    pub fn stop(&mut self, i: usize) -> Result<(), PrivateServerError> {
        self.stop_mode(i, "fast")
    }

    fn stop_mode(&mut self, i: usize, mode: &str) -> Result<(), PrivateServerError> {
        let node = self.node(i)?;
        let mut ctl = self.pg_command("pg_ctl");
        ctl.arg("-D").arg(&node.data).args(["-m", mode, "-w", "-t", "30", "stop"]);
        let result = run(ctl, &format!("pg_ctl stop -m {mode} (node {i})"), Duration::from_secs(40));
        if result.is_err() {
            kill_postmaster(&node.data);
        }
        self.nodes[i].running = false;
        result
    }

    /// Promotes replica `i` to primary (`pg_ctl promote`, waiting until it accepts writes).
    pub fn promote(&mut self, i: usize) -> Result<(), PrivateServerError> {
        let node = self.node(i)?;
        let mut ctl = self.pg_command("pg_ctl");
        ctl.arg("-D").arg(&node.data).args(["-w", "-t", "60", "promote"]);
        run(ctl, &format!("pg_ctl promote (node {i})"), START_TIMEOUT)
    }

    /// Makes the stopped node `i` a replica of node `primary` (a `standby.signal` and a `primary_conninfo`
    /// pointing at it, on a new slot there) and starts it: how an old primary comes back read-only after a
    /// failover. It serves read-only sessions whether or not it can follow the new primary's timeline.
    pub fn start_as_replica_of(&mut self, i: usize, primary: usize) -> Result<(), PrivateServerError> {
        let slot = format!("rejoin_{i}");
        self.create_slot(primary, &slot)?;
        let node = self.node(i)?;
        let conninfo = format!(
            "\nprimary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name=node{i}'\n\
             primary_slot_name = '{slot}'\n",
            self.node(primary)?.port
        );
        append(&node.data.join("postgresql.conf"), &conninfo)?;
        let signal = node.data.join("standby.signal");
        std::fs::write(&signal, "").map_err(|e| error(format!("writing {}: {e}", signal.display())))?;
        if let Some((uid, gid)) = self.owner {
            chown(&signal, Some(uid), Some(gid)).map_err(|e| error(format!("chown {}: {e}", signal.display())))?;
        }
        self.start_node(i)
    }

    /// Points the running replica `i` at node `primary` (a slot there, `primary_conninfo` reloaded), so it
    /// follows a promoted replica. Whether it can follow depends on how much WAL it had received from the old
    /// primary; it keeps serving reads either way.
    pub fn retarget(&mut self, i: usize, primary: usize) -> Result<(), PrivateServerError> {
        let slot = format!("replica_{i}");
        self.create_slot(primary, &slot)?;
        let port = self.node(primary)?.port;
        self.psql(
            i,
            "postgres",
            &format!(
                "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port={port} user=postgres application_name=node{i}'"
            ),
        )?;
        self.psql(i, "postgres", &format!("ALTER SYSTEM SET primary_slot_name = '{slot}'"))?;
        self.psql(i, "postgres", "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// Creates the physical replication slot `slot` on node `primary` unless it already exists.
    fn create_slot(&self, primary: usize, slot: &str) -> Result<(), PrivateServerError> {
        self.psql(
            primary,
            "postgres",
            &format!(
                "SELECT pg_create_physical_replication_slot('{slot}') WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
            ),
        )?;
        Ok(())
    }

    /// Runs `sql` on node `i` with psql and returns its unaligned output.
    pub fn psql(&self, i: usize, database: &str, sql: &str) -> Result<String, PrivateServerError> {
        let node = self.node(i)?;
        let mut cmd = Command::new(Path::new(PG_BIN).join("psql"));
        cmd.stdin(Stdio::null()).env("PGCONNECT_TIMEOUT", "5").args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &node.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ]);
        run_output(cmd, &format!("psql on node {i}: {sql}"), Duration::from_secs(30))
    }

    /// The port of node `i` on 127.0.0.1.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// How many nodes there are (the primary and its replicas).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The multi-host URL of every node, in node order:
    /// `postgres://postgres@127.0.0.1:P0,127.0.0.1:P1,.../test?sslmode=disable`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("postgres://postgres@{}/test?sslmode=disable", hosts.join(","))
    }

    /// The URL of node `i` alone.
    pub fn node_url(&self, i: usize) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test?sslmode=disable", self.nodes[i].port)
    }

    /// The server log of node `i`.
    pub fn log(&self, i: usize) -> &Path {
        &self.nodes[i].log
    }
}

impl Drop for PrivatePgCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].running {
                let _ = self.crash(i);
            }
            // A node the test crashed by other means, or whose stop failed, is killed by its PID.
            kill_postmaster(&self.nodes[i].data);
        }
    }
}

/// SIGKILL to the postmaster whose PID is in `data`/postmaster.pid, if that process is still running and is
/// ours: its command line names `data` (PIDs are reused, so a stale PID file must not kill a stranger).
fn kill_postmaster(data: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(data.join("postmaster.pid")) else { return };
    let Some(pid) = pid_file.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) else { return };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return };
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    if cmdline.contains(&*data.to_string_lossy()) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
    }
}

fn append(path: &Path, text: &str) -> Result<(), PrivateServerError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| error(format!("opening {}: {e}", path.display())))?;
    f.write_all(text.as_bytes()).map_err(|e| error(format!("writing {}: {e}", path.display())))
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

fn run(cmd: Command, what: &str, timeout: Duration) -> Result<(), PrivateServerError> {
    run_output(cmd, what, timeout).map(drop)
}

/// Runs `cmd` to completion within `timeout`, returning its standard output; an error carries its output.
fn run_output(mut cmd: Command, what: &str, timeout: Duration) -> Result<String, PrivateServerError> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| error(format!("{what}: cannot run it ({e}); install PostgreSQL 15 with `{SCRIPT}`")))?;
    // The outputs are small (a few lines), so reading them after the wait cannot fill a pipe and block.
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error(format!("{what} did not finish within {timeout:?}")));
            }
            Err(e) => return Err(error(format!("{what}: {e}"))),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if status.success() {
        Ok(out)
    } else {
        Err(error(format!("{what} failed ({status}): {}{}", err.trim(), out.trim())))
    }
}

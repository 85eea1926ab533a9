//! Database servers of a test's own: a private PostgreSQL, MariaDB or ArcadeDB instance in a temporary
//! directory, on a free loopback port, that the test may stop, kill and start again without disturbing the
//! shared servers the other tests use.
//!
//! All come from the packages scripts/services/*.sh rely on (PostgreSQL 15 in `/usr/lib/postgresql/15/bin`,
//! MariaDB's `mariadb-install-db` and `mariadbd`, the ArcadeDB package with its own Java runtime). Run as root, the server runs as the packages' own user
//! (`postgres`, `mysql`): `initdb` and `postgres` refuse to run as root. Every start and stop is bounded; a
//! server still running when its handle is dropped is killed by PID and its directory removed.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before it is an error (initdb, install-db and the servers start in 1-5 s here).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean stop may take before the server is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SCRIPT: &str = "scripts/dev-services.sh";

/// An error starting or stopping a private server: what failed and the server's log, if any.
#[derive(Debug)]
pub struct PrivateServerError(String);

impl std::fmt::Display for PrivateServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PrivateServerError {}

pub(crate) fn error(message: impl Into<String>) -> PrivateServerError {
    PrivateServerError(message.into())
}

impl PrivateServerError {
    /// An error with this message, for the other private servers' modules.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        error(message)
    }
}

/// [`run_as`], for the other private servers' modules.
pub(crate) fn run_as_user(user: &str) -> Result<Option<(u32, u32)>, PrivateServerError> {
    run_as(user)
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// The uid and gid of `user` from /etc/passwd, when this process runs as root (a server then runs as `user`).
pub(crate) fn run_as(user: &str) -> Result<Option<(u32, u32)>, PrivateServerError> {
    if !is_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| error(format!("reading /etc/passwd: {e}")))?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == user {
            let uid = fields[2].parse().map_err(|_| error(format!("bad uid for {user} in /etc/passwd")))?;
            let gid = fields[3].parse().map_err(|_| error(format!("bad gid for {user} in /etc/passwd")))?;
            return Ok(Some((uid, gid)));
        }
    }
    Err(error(format!("running as root, and there is no user {user} to run the server as; install it with `{SCRIPT}`")))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective uid.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A temporary directory owned by `owner` (when running as root), removed on drop.
#[derive(Debug)]
pub(crate) struct OwnedDir {
    pub(crate) path: PathBuf,
}

impl OwnedDir {
    /// Creates `aquifer-private-{kind}-{pid}-{nanos}` in the system's temporary directory.
    pub(crate) fn new(kind: &str, owner: Option<(u32, u32)>) -> Result<Self, PrivateServerError> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("aquifer-private-{kind}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| error(format!("creating {}: {e}", path.display())))?;
        if let Some((uid, gid)) = owner {
            chown(&path, Some(uid), Some(gid)).map_err(|e| error(format!("chown {}: {e}", path.display())))?;
        }
        Ok(OwnedDir { path })
    }
}

impl Drop for OwnedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub(crate) fn command(program: impl AsRef<std::ffi::OsStr>, owner: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion within `timeout`; its output goes to `log`.
pub(crate) fn run_bounded(
    mut cmd: Command,
    what: &str,
    log: &Path,
    timeout: Duration,
) -> Result<(), PrivateServerError> {
    let file = |log: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| error(format!("{}: {e}", log.display())))
    };
    let mut child = cmd
        .stdout(file(log)?)
        .stderr(file(log)?)
        .spawn()
        .map_err(|e| error(format!("{what}: cannot run it ({e}); install the server with `{SCRIPT}`")))?;
    let status = wait_bounded(&mut child, timeout).map_err(|e| error(format!("{what}: {e}")))?;
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(error(format!("{what} failed ({s}): {}", tail(log)))),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error(format!("{what} did not finish within {timeout:?}: {}", tail(log))))
        }
    }
}

/// Waits for `child` up to `timeout`: `Some(status)` when it exited, `None` when it is still running.
fn wait_bounded(child: &mut Child, timeout: Duration) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of a log file, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(8);
    format!("{} (log: {})", lines[start..].join(" | "), log.display())
}

/// Sends `signal` (a name such as `INT` or `TERM`) to `pid` with kill(1): std only sends SIGKILL, and a
/// dependency for one signal is not worth it.
fn signal(pid: u32, signal: &str) -> Result<(), PrivateServerError> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| error(format!("kill -{signal} {pid}: {e}")))?;
    if status.success() { Ok(()) } else { Err(error(format!("kill -{signal} {pid}: {status}"))) }
}

/// Sends `signal` to the process group `pgid` (a server started as the leader of its own group).
fn signal_group(pgid: u32, signal: &str) -> Result<(), PrivateServerError> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status()
        .map_err(|e| error(format!("kill -{signal} -- -{pgid}: {e}")))?;
    if status.success() { Ok(()) } else { Err(error(format!("kill -{signal} -- -{pgid}: {status}"))) }
}

/// When a freshly started server counts as ready.
#[derive(Clone, Copy)]
enum Ready {
    /// The port accepts TCP connections. PostgreSQL answers a shutdown signal at any point of its start, so
    /// an open port is enough.
    Listening,
    /// The server sends its first bytes on a new connection. mariadbd opens its port before it has finished
    /// starting (grants, init file) and only greets once it accepts; a SIGTERM that arrives in between is
    /// lost: under CPU and fsync load here, 1 of 15 starts stopped that way ignored SIGTERM for 30 s, while
    /// 60 of 60 stopped after the greeting exited within 0.25 s.
    Greeting,
}

/// Waits (at most `timeout`) until no live process is left in the process group `pgid`, read from /proc:
/// zombies hold no sockets and do not count.
fn wait_for_group_exit(pgid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process that is not a zombie belongs to the process group `pgid`.
fn group_alive(pgid: u32) -> bool {
    let pgid = pgid.to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { return false };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { return false };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        state != Some("Z") && pgrp == Some(pgid.as_str())
    })
}

/// SIGKILL to the process group of `child` (its leader), then waits until the group is gone.
fn kill_group(mut child: Child) {
    let _ = signal_group(child.id(), "KILL");
    let _ = child.kill();
    let _ = child.wait();
    // Reaping the server is not enough: a process it had just forked may not have closed its copy of the
    // listening socket yet, and the port then still accepts (seen once in CI right after a kill).
    wait_for_group_exit(child.id(), Duration::from_secs(5));
}

/// Polls `port` until the server is ready in the sense of `ready`, or `deadline`.
fn wait_for_port(port: u16, ready: Ready, deadline: Instant) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            match ready {
                Ready::Listening => return true,
                Ready::Greeting => {
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                    if matches!(std::io::Read::read(&mut &stream, &mut [0u8; 1]), Ok(1)) {
                        return true;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The running server process of a [`PrivatePostgres`], [`PrivateMariaDb`] or [`PrivateArcadeDb`], with the shutdown signal its
/// server treats as "close every session and stop".
struct Server {
    child: Option<Child>,
    stop_signal: &'static str,
    ready: Ready,
    log: PathBuf,
    port: u16,
    what: &'static str,
}

impl Server {
    /// The server `what`, not started, on a free port; `stop_signal` is its "close every session and stop".
    fn new(what: &'static str, stop_signal: &'static str, ready: Ready, log: PathBuf) -> Self {
        Server { child: None, stop_signal, ready, log, port: free_port(), what }
    }

    fn spawn(&mut self, mut cmd: Command) -> Result<(), PrivateServerError> {
        if self.child.is_some() {
            return Err(error(format!("the private {} is already running", self.what)));
        }
        let file = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map_err(|e| error(format!("{}: {e}", self.log.display())))
        };
        // Its own process group, so that a kill reaches every process of the server and nothing else.
        let mut child = cmd
            .process_group(0)
            .stdout(file()?)
            .stderr(file()?)
            .spawn()
            .map_err(|e| error(format!("starting the private {}: {e}; install it with `{SCRIPT}`", self.what)))?;
        let deadline = Instant::now() + START_TIMEOUT;
        // Ready as `self.ready` says (both servers open the port once recovery is done), unless the process
        // exits first (a port taken in the meantime, a bad datadir).
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(error(format!(
                    "the private {} exited at start ({status}): {}",
                    self.what,
                    tail(&self.log)
                )));
            }
            if wait_for_port(self.port, self.ready, (Instant::now() + Duration::from_millis(200)).min(deadline)) {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error(format!(
                    "the private {} did not accept connections within {START_TIMEOUT:?}: {}",
                    self.what,
                    tail(&self.log)
                )));
            }
        }
        self.child = Some(child);
        Ok(())
    }

    /// A clean shutdown that closes every session; killed if it takes longer than [`STOP_TIMEOUT`].
    fn stop(&mut self) -> Result<(), PrivateServerError> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        signal(child.id(), self.stop_signal)?;
        match wait_bounded(&mut child, STOP_TIMEOUT) {
            Ok(Some(_)) => {
                // Both servers end their other processes before they exit; this only makes sure.
                wait_for_group_exit(child.id(), Duration::from_secs(5));
                Ok(())
            }
            _ => {
                kill_group(child);
                Err(error(format!(
                    "the private {} did not stop within {STOP_TIMEOUT:?}; killed it: {}",
                    self.what,
                    tail(&self.log)
                )))
            }
        }
    }

    /// SIGKILL to the server's process group (PostgreSQL's backends are processes of their own, which would
    /// otherwise go on serving their sessions): a crash. The kernel closes every session's socket.
    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill_group(child);
        }
    }

    fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// What every private server has, on its `server` field: stop, kill, state, port, log, a kill when dropped,
/// and the restart drill's [`Restartable`](crate::Restartable).
macro_rules! private_server {
    ($($server:ident: $stop:literal),+ $(,)?) => {$(
        impl $server {
            #[doc = $stop]
            pub fn stop(&mut self) -> Result<(), PrivateServerError> {
                self.server.stop()
            }

            /// Kills every process of the server (SIGKILL to its process group), as a crash would.
            pub fn kill(&mut self) {
                self.server.kill();
            }

            /// Whether the server process is running.
            pub fn is_running(&mut self) -> bool {
                self.server.is_running()
            }

            /// The server's port on 127.0.0.1.
            pub fn port(&self) -> u16 {
                self.server.port
            }

            /// The server's log file.
            pub fn log(&self) -> &Path {
                &self.server.log
            }
        }

        impl Drop for $server {
            fn drop(&mut self) {
                self.server.kill();
            }
        }

        impl crate::Restartable for $server {
            fn stop(&mut self) -> Result<(), PrivateServerError> {
                $server::stop(self)
            }
            fn kill(&mut self) {
                $server::kill(self)
            }
            fn restart(&mut self) -> Result<(), PrivateServerError> {
                $server::restart(self)
            }
            fn log(&self) -> &Path {
                $server::log(self)
            }
        }
    )+};
}

/// A PostgreSQL 15 server of a test's own: `initdb` into a temporary directory, then `postgres` on a free port
/// of 127.0.0.1 with trust authentication and a database `test`.
///
/// ```no_run
/// let mut pg = aquifer_testing::PrivatePostgres::start().unwrap();
/// let url = pg.url(); // postgres://postgres@127.0.0.1:PORT/test?sslmode=disable
/// pg.stop().unwrap(); // connections refused from here on
/// pg.restart().unwrap(); // same port, same data
/// ```
pub struct PrivatePostgres {
    server: Server,
    owner: Option<(u32, u32)>,
    data: PathBuf,
    // Dropped last: the server is killed first (field order), then its directory removed.
    dir: OwnedDir,
}

impl PrivatePostgres {
    /// Creates the cluster and starts the server (both bounded by [`START_TIMEOUT`]).
    pub fn start() -> Result<Self, PrivateServerError> {
        Self::start_with_hba(None)
    }

    /// Like [`start`](Self::start), but over TCP only `postgres` is trusted: every other role must give its
    /// password (`scram-sha-256`), so a test can change a role's password and see the old one refused.
    pub fn start_with_password_auth() -> Result<Self, PrivateServerError> {
        Self::start_with_hba(Some(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        ))
    }

    fn start_with_hba(hba: Option<&str>) -> Result<Self, PrivateServerError> {
        let owner = run_as("postgres")?;
        let dir = OwnedDir::new("postgres", owner)?;
        let data = dir.path.join("data");
        let log = dir.path.join("server.log");
        let mut initdb = command(Path::new(PG_BIN).join("initdb"), owner);
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        run_bounded(initdb, "initdb", &dir.path.join("initdb.log"), START_TIMEOUT)?;
        if let Some(hba) = hba {
            std::fs::write(data.join("pg_hba.conf"), hba).map_err(|e| error(format!("writing pg_hba.conf: {e}")))?;
        }
        // The `test` database exists from the start, as on the shared server: created in single-user mode, so
        // no client program is needed.
        let mut pg =
            PrivatePostgres { server: Server::new("PostgreSQL", "INT", Ready::Listening, log), owner, data, dir };
        pg.restart()?;
        // The postmaster listens before it accepts sessions ("the database system is starting up"): under load
        // that window lasts long enough for createdb to land in it, so it is tried again until the deadline.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut createdb = command(Path::new(PG_BIN).join("createdb"), None);
            createdb.args(["-h", "127.0.0.1", "-p", &pg.port().to_string(), "-U", "postgres", "test"]);
            match run_bounded(createdb, "createdb test", &pg.dir.path.join("createdb.log"), START_TIMEOUT) {
                Err(e) if e.0.contains("starting up") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                result => return result.map(|()| pg),
            }
        }
    }

    /// Starts the server again (same port, same data) after [`stop`](Self::stop) or [`kill`](Self::kill);
    /// returns once it accepts connections.
    pub fn restart(&mut self) -> Result<(), PrivateServerError> {
        let mut cmd = command(Path::new(PG_BIN).join("postgres"), self.owner);
        cmd.arg("-D").arg(&self.data).arg("-p").arg(self.server.port.to_string()).arg("-k").arg(&self.dir.path).args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=100",
        ]);
        self.server.spawn(cmd)
    }

    /// `postgres://postgres@127.0.0.1:PORT/test?sslmode=disable` (trust: any password is accepted).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test?sslmode=disable", self.port())
    }
}

/// A MariaDB server of a test's own: `mariadb-install-db` into a temporary directory, then `mariadbd` with its
/// own datadir, socket and port on 127.0.0.1; `root` without a password and a database `test`.
pub struct PrivateMariaDb {
    server: Server,
    data: PathBuf,
    /// More `mariadbd` options, after the defaults (replication settings for [`crate::PrivateMariaDbCluster`]).
    options: Vec<String>,
    dir: OwnedDir,
}

impl PrivateMariaDb {
    /// Creates the data directory and starts the server (both bounded by [`START_TIMEOUT`]).
    pub fn start() -> Result<Self, PrivateServerError> {
        Self::start_with_options(&[])
    }

    /// Like [`start`](Self::start), with more `mariadbd` options (`--server-id=1`, `--log-bin=...`), given
    /// after the defaults so they win; with a `--log-bin` option the default `--skip-log-bin` is left out.
    pub fn start_with_options(options: &[&str]) -> Result<Self, PrivateServerError> {
        let owner = run_as("mysql")?;
        let dir = OwnedDir::new("mariadb", owner)?;
        let data = dir.path.join("data");
        // A temporary directory of its own: install-db's bootstrap server names its temporary tables after
        // its PID and thread in the shared tmpdir, and of 6 installs run at once here, 1 failed ("Unknown table
        // 'mysql.tmp_user_sys'") while another server removed a file of the same name.
        let tmp = dir.path.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| error(format!("creating {}: {e}", tmp.display())))?;
        if let Some((uid, gid)) = owner {
            chown(&tmp, Some(uid), Some(gid)).map_err(|e| error(format!("chown {}: {e}", tmp.display())))?;
        }
        let mut install = command("mariadb-install-db", None);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"]);
        if owner.is_some() {
            install.arg("--user=mysql");
        }
        run_bounded(install, "mariadb-install-db", &dir.path.join("install.log"), START_TIMEOUT)?;
        // Runs at every start: the `test` database of the shared server's layout.
        let init = dir.path.join("init.sql");
        std::fs::write(&init, "CREATE DATABASE IF NOT EXISTS test;\n")
            .map_err(|e| error(format!("{}: {e}", init.display())))?;
        let log = dir.path.join("server.log");
        let options = options.iter().map(|o| (*o).to_owned()).collect();
        let mut my =
            PrivateMariaDb { server: Server::new("MariaDB", "TERM", Ready::Greeting, log), data, options, dir };
        my.restart()?;
        Ok(my)
    }

    /// Starts the server again (same port, same data) after [`stop`](Self::stop) or [`kill`](Self::kill);
    /// returns once it accepts connections.
    pub fn restart(&mut self) -> Result<(), PrivateServerError> {
        let mut cmd = command("/usr/sbin/mariadbd", None);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--socket={}", self.dir.path.join("mariadb.sock").display()))
            .arg(format!("--port={}", self.server.port))
            .arg(format!("--pid-file={}", self.dir.path.join("mariadb.pid").display()))
            .arg(format!("--init-file={}", self.dir.path.join("init.sql").display()))
            .arg(format!("--tmpdir={}", self.dir.path.join("tmp").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
                "--max-connections=100",
            ]);
        if !self.options.iter().any(|o| o.starts_with("--log-bin")) {
            cmd.arg("--skip-log-bin");
        }
        cmd.args(&self.options);
        // mariadbd drops root privileges itself when told which user to become.
        if is_root() {
            cmd.arg("--user=mysql");
        }
        self.server.spawn(cmd)
    }

    /// `mysql://root@127.0.0.1:PORT/test`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/test", self.port())
    }

    /// Replaces the extra `mariadbd` options (see [`start_with_options`](Self::start_with_options)) for the
    /// next [`restart`](Self::restart): a failed primary brought back with `--read-only=1`, say.
    pub fn set_options(&mut self, options: &[&str]) {
        self.options = options.iter().map(|o| (*o).to_owned()).collect();
    }

    /// The extra `mariadbd` options the server starts with.
    pub fn options(&self) -> &[String] {
        &self.options
    }

    /// The server's unix socket (for the `mariadb` command-line client).
    pub fn socket(&self) -> PathBuf {
        self.dir.path.join("mariadb.sock")
    }

    /// The PID of the running server process (`None` when stopped or killed).
    pub fn pid(&self) -> Option<u32> {
        self.server.child.as_ref().map(Child::id)
    }

    /// Runs `sql` as root through the unix socket with the `mariadb` command-line client (bounded by
    /// [`START_TIMEOUT`]) and returns what it printed: tab-separated rows, no column names.
    pub fn run_sql(&self, sql: &str) -> Result<String, PrivateServerError> {
        let out = self.dir.path.join("sql.out");
        let _ = std::fs::remove_file(&out);
        let mut client = command("mariadb", None);
        client
            .args(["--no-defaults", "-uroot", "--batch", "--skip-column-names"])
            .arg(format!("--socket={}", self.socket().display()))
            .arg("-e")
            .arg(sql);
        run_bounded(client, "mariadb -e", &out, START_TIMEOUT)?;
        std::fs::read_to_string(&out).map_err(|e| error(format!("{}: {e}", out.display())))
    }
}

/// An ArcadeDB server of a test's own with its Bolt plugin (the package scripts/services/40-arcadedb.sh
/// installs under the services directory, [`crate::servers::services_dir`]): its root directory and
/// database `testdb` in a temporary directory, Bolt and HTTP on free ports of 127.0.0.1.
///
/// ```no_run
/// let mut arcade = aquifer_testing::PrivateArcadeDb::start("aquifer-secret").unwrap();
/// let uri = arcade.uri(); // bolt://127.0.0.1:PORT, user root, database testdb
/// arcade.kill(); // connections refused from here on
/// arcade.restart().unwrap(); // same ports, same data
/// ```
pub struct PrivateArcadeDb {
    server: Server,
    http: u16,
    root_password: String,
    dir: OwnedDir,
}

impl PrivateArcadeDb {
    /// Starts the server with `root_password` for its `root` user (bounded by [`START_TIMEOUT`]).
    pub fn start(root_password: &str) -> Result<Self, PrivateServerError> {
        let dir = OwnedDir::new("arcadedb", None)?;
        let log = dir.path.join("server.log");
        let mut arcade = PrivateArcadeDb {
            server: Server::new("ArcadeDB", "TERM", Ready::Listening, log),
            http: free_port(),
            root_password: root_password.to_owned(),
            dir,
        };
        arcade.restart()?;
        Ok(arcade)
    }

    /// Starts the server again (same ports, same data) after [`stop`](Self::stop) or [`kill`](Self::kill);
    /// returns once its Bolt port accepts connections.
    pub fn restart(&mut self) -> Result<(), PrivateServerError> {
        let pkg = crate::servers::services_dir().join("arcadedb/pkg/arcadedb_embedded");
        let java = pkg.join("jre/bin/java");
        if !java.exists() {
            return Err(error(format!("ArcadeDB is not installed at {}; install it with `{SCRIPT}`", pkg.display())));
        }
        let root = &self.dir.path;
        let mut cmd = command(java, None);
        cmd.args(["-Xms64m", "-Xmx384m"])
            .arg(format!("-Darcadedb.server.rootPath={}", root.display()))
            .arg(format!("-Darcadedb.server.databaseDirectory={}", root.join("databases").display()))
            .arg(format!("-Darcadedb.server.rootPassword={}", self.root_password))
            .arg("-Darcadedb.server.httpIncomingHost=127.0.0.1")
            .arg(format!("-Darcadedb.server.httpIncomingPort={}", self.http))
            .arg("-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin")
            .arg("-Darcadedb.bolt.host=127.0.0.1")
            .arg(format!("-Darcadedb.bolt.port={}", self.server.port))
            .arg("-Darcadedb.server.defaultDatabases=testdb[root]")
            .arg("-cp")
            .arg(pkg.join("jars/*"))
            .arg("com.arcadedb.server.ArcadeDBServer")
            // ArcadeDB writes ./log/ under its working directory.
            .current_dir(root);
        self.server.spawn(cmd)
    }

    /// `bolt://127.0.0.1:PORT` (user `root`, the password given to [`start`](Self::start), database `testdb`).
    pub fn uri(&self) -> String {
        format!("bolt://127.0.0.1:{}", self.port())
    }
}

private_server! {
    PrivatePostgres: "Fast shutdown (SIGINT): every session is terminated, then the server exits; bounded by [`STOP_TIMEOUT`], \
     after which it is killed.",
    PrivateMariaDb: "Clean shutdown (SIGTERM): every session is closed, then the server exits; bounded by [`STOP_TIMEOUT`], \
     after which it is killed.",
    PrivateArcadeDb: "Clean shutdown (SIGTERM: the JVM's shutdown hook stops the server, closing every session); bounded by \
     [`STOP_TIMEOUT`], after which it is killed.",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_group_is_gone_once_its_processes_have_exited() {
        // A group of two: a shell and the sleep it forks, as a server and a backend.
        let mut child = Command::new("sh").args(["-c", "sleep 30 & wait"]).process_group(0).spawn().unwrap();
        let pgid = child.id();
        assert!(group_alive(pgid), "the group runs");
        signal_group(pgid, "KILL").unwrap();
        let _ = child.wait();
        wait_for_group_exit(pgid, Duration::from_secs(5));
        assert!(!group_alive(pgid), "no live process left in the group");
    }
}

//! An ArcadeDB server of a test's own (the package installed by scripts/services/40-arcadedb.sh), on free
//! ports under a temporary directory, started and killed by PID.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aquifer_core::Manager;
use aquifer_neo4j::Neo4jManager;
use tokio::process::{Child, Command};

/// An ArcadeDB server of this test's own.
pub struct ArcadeDb {
    pub root: PathBuf,
    pub bolt: u16,
    http: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn java() -> PathBuf {
    let dir = std::env::var("AQUIFER_SERVICES_DIR").unwrap_or_else(|_| "/tmp/aquifer-services".to_owned());
    let java = PathBuf::from(dir).join("arcadedb/pkg/arcadedb_embedded/jre/bin/java");
    assert!(java.exists(), "ArcadeDB is not installed at {}; install it with `{}`", java.display(), super::SCRIPT);
    java
}

impl ArcadeDb {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = std::env::temp_dir().join(format!("aq-neo4j-restart-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        ArcadeDb { root, bolt: free_port(), http: free_port(), child: None }
    }

    pub fn start(&mut self) {
        let java = java();
        let jars = java.parent().unwrap().parent().unwrap().parent().unwrap().join("jars/*");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("server.log")).unwrap();
        let child = Command::new(java)
            .arg("-Xms64m")
            .arg("-Xmx384m")
            .arg(format!("-Darcadedb.server.rootPath={}", self.root.display()))
            .arg(format!("-Darcadedb.server.databaseDirectory={}", self.root.join("databases").display()))
            .arg(format!("-Darcadedb.server.rootPassword={}", super::PASSWORD))
            .arg("-Darcadedb.server.httpIncomingHost=127.0.0.1")
            .arg(format!("-Darcadedb.server.httpIncomingPort={}", self.http))
            .arg("-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin")
            .arg("-Darcadedb.bolt.host=127.0.0.1")
            .arg(format!("-Darcadedb.bolt.port={}", self.bolt))
            .arg("-Darcadedb.server.defaultDatabases=testdb[root]")
            .arg("-cp")
            .arg(jars)
            .arg("com.arcadedb.server.ArcadeDBServer")
            // ArcadeDB writes ./log/ under its working directory.
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start ArcadeDB");
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL: a crash, not a clean shutdown) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    pub fn manager(&self) -> Neo4jManager {
        Neo4jManager::new(super::config().uri(format!("bolt://127.0.0.1:{}", self.bolt))).unwrap()
    }

    /// Waits (at most 90 s) until a connection to this server runs `RETURN 1`.
    pub async fn wait_ready(&self) {
        let manager = self.manager();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), manager.connect()).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ArcadeDB did not start; see {}",
                self.root.join("server.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ArcadeDb {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

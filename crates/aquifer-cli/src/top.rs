//! `aquifer top`: the server's own view of its sessions, which no client-side pool can give: every
//! application's connections, the server's limit, and sessions that look leaked.

use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::target::{Opened, Target};

/// Utilization of `max_connections` from which `top` warns.
pub const WARN_UTILIZATION: f64 = 0.80;
/// Utilization of `max_connections` from which `top` reports critical.
pub const CRITICAL_UTILIZATION: f64 = 0.95;

/// One group of sessions: same application (or user) and state.
#[derive(Debug, Serialize)]
pub struct Group {
    /// PostgreSQL: `application_name`; MySQL/MariaDB: the user (the processlist carries no application name).
    pub application: String,
    /// PostgreSQL: `active`, `idle`, `idle in transaction`...; MySQL/MariaDB: the command (`Query`, `Sleep`...).
    pub state: String,
    /// Sessions in the group.
    pub sessions: i64,
    /// The longest time a session of the group has been in this state, in seconds.
    pub longest_s: f64,
}

/// A session that looks leaked: idle inside a transaction, or idle longer than the threshold.
#[derive(Debug, Serialize)]
pub struct Suspect {
    /// Server process / thread id.
    pub id: i64,
    /// The session's user.
    pub user: String,
    /// PostgreSQL `application_name` (empty on MySQL/MariaDB).
    pub application: String,
    /// Client address.
    pub client: String,
    /// `idle in transaction`, `idle`, `Sleep (open transaction)`...
    pub state: String,
    /// Seconds in that state.
    pub idle_s: f64,
    /// Why it is flagged.
    pub reason: String,
}

/// One snapshot of `top`.
#[derive(Debug, Serialize)]
pub struct TopReport {
    /// The target, password redacted.
    pub target: String,
    /// `db.system.name`.
    pub system: String,
    /// The server's version.
    pub server_version: Option<String>,
    /// The server's session limit, where it has one.
    pub max_connections: Option<i64>,
    /// Client sessions now open on the server (all applications, this one included).
    pub connections: Option<i64>,
    /// `connections / max_connections`.
    pub utilization: Option<f64>,
    /// `ok`, `warning` (>= 80 %) or `critical` (>= 95 %).
    pub alert: &'static str,
    /// Sessions grouped by application and state, largest first.
    pub groups: Vec<Group>,
    /// Sessions that look leaked.
    pub suspects: Vec<Suspect>,
    /// What this backend does or does not expose.
    pub notes: Vec<String>,
}

impl TopReport {
    fn new(target: &Target, system: &str) -> TopReport {
        TopReport {
            target: target.to_string(),
            system: system.to_owned(),
            server_version: None,
            max_connections: None,
            connections: None,
            utilization: None,
            alert: "ok",
            groups: Vec::new(),
            suspects: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn set_usage(&mut self, connections: i64, max: i64) {
        self.connections = Some(connections);
        self.max_connections = Some(max);
        let utilization = if max > 0 { connections as f64 / max as f64 } else { 0.0 };
        self.utilization = Some(utilization);
        self.alert = alert(utilization);
    }

    /// 0 below 80 % of `max_connections`, 1 from 80 %, 2 from 95 %.
    fn exit_code(&self) -> u8 {
        match self.alert {
            "critical" => 2,
            "warning" => 1,
            _ => 0,
        }
    }
}

/// The alert level of a utilization of the server's connection limit.
pub fn alert(utilization: f64) -> &'static str {
    if utilization >= CRITICAL_UTILIZATION {
        "critical"
    } else if utilization >= WARN_UTILIZATION {
        "warning"
    } else {
        "ok"
    }
}

/// Runs `top` once, or every `watch` until interrupted. Exit status: 0 below 80 % of the server's
/// `max_connections`, 1 from 80 %, 2 from 95 %; a server that cannot be queried is an `Err` (exit 64 in `main`).
pub async fn run(
    target: &Target,
    timeout: Duration,
    idle_threshold: Duration,
    watch: Option<Duration>,
    json: bool,
) -> Result<u8, String> {
    let pool = target.open(1, timeout).await?;
    let mut code;
    loop {
        let report = match snapshot(target, &pool, idle_threshold).await {
            Ok(report) => report,
            Err(e) => {
                pool.close().await;
                return Err(format!("{target}: {e}"));
            }
        };
        code = report.exit_code();
        match (json, watch.is_some()) {
            (true, true) => println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?),
            (true, false) => println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?),
            // Clear the screen and home the cursor, so the table redraws in place.
            (false, true) => print!("\x1b[2J\x1b[H{}", render(&report)),
            (false, false) => print!("{}", render(&report)),
        }
        let Some(every) = watch else { break };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    pool.close().await;
    Ok(code)
}

/// PostgreSQL and MySQL list their sessions; every other backend gets the pool's own check.
async fn snapshot(target: &Target, pool: &Opened, idle: Duration) -> Result<TopReport, String> {
    if let Some(pg) = pool.as_any().downcast_ref::<aquifer_postgres::PgPool>() {
        return postgres(target, pg, idle).await;
    }
    if let Some(my) = pool.as_any().downcast_ref::<aquifer_mysql::MySqlPool>() {
        return mysql(target, my, idle).await;
    }
    other(target, pool).await
}

const PG_GROUPS: &str = "SELECT coalesce(application_name, ''), coalesce(state, ''), count(*), \
     greatest(coalesce(max(extract(epoch FROM now() - state_change)), 0), 0)::float8 \
     FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2";

const PG_SUSPECTS: &str = "SELECT pid::int8, coalesce(usename::text, ''), coalesce(application_name, ''), \
     coalesce(host(client_addr), 'local'), state, extract(epoch FROM now() - state_change)::float8 \
     FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
     AND (state LIKE 'idle in transaction%' OR (state = 'idle' AND state_change < now() - make_interval(secs => $1))) \
     ORDER BY 6 DESC LIMIT 50";

async fn postgres(target: &Target, pool: &aquifer_postgres::PgPool, idle: Duration) -> Result<TopReport, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let mut report = TopReport::new(target, "postgresql");
    let (version, max, reserved): (String, i32, i32) = aquifer_postgres::sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('max_connections')::int, \
         current_setting('superuser_reserved_connections')::int",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    report.server_version = Some(version);
    let rows: Vec<(String, String, i64, f64)> =
        aquifer_postgres::sqlx::query_as(PG_GROUPS).fetch_all(&mut *conn).await.map_err(|e| e.to_string())?;
    let total: i64 = rows.iter().map(|r| r.2).sum();
    report.set_usage(total, i64::from(max));
    report.groups = rows
        .into_iter()
        .map(|(application, state, sessions, longest_s)| Group { application, state, sessions, longest_s })
        .collect();
    let suspects: Vec<(i64, String, String, String, String, f64)> = aquifer_postgres::sqlx::query_as(PG_SUSPECTS)
        .bind(idle.as_secs_f64())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    report.suspects = suspects
        .into_iter()
        .map(|(id, user, application, client, state, idle_s)| Suspect {
            id,
            user,
            application,
            client,
            reason: if state.starts_with("idle in transaction") {
                "idle inside an open transaction: holds locks and a connection".into()
            } else {
                format!("idle longer than {}", humantime::format_duration(idle))
            },
            state,
            idle_s,
        })
        .collect();
    report.notes.push(format!(
        "{reserved} of max_connections are reserved for superusers; this view's own session is counted \
         (application_name {})",
        crate::target::APPLICATION_NAME
    ));
    Ok(report)
}

const MY_GROUPS: &str = "SELECT USER, COMMAND, COUNT(*), MAX(TIME) FROM information_schema.PROCESSLIST \
     WHERE COMMAND <> 'Daemon' GROUP BY USER, COMMAND ORDER BY 3 DESC, 1, 2";

const MY_SUSPECTS: &str = "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.TIME, t.trx_id IS NOT NULL \
     FROM information_schema.PROCESSLIST p LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID \
     WHERE p.ID <> CONNECTION_ID() AND p.COMMAND = 'Sleep' AND (t.trx_id IS NOT NULL OR p.TIME >= ?) \
     ORDER BY p.TIME DESC LIMIT 50";

async fn mysql(target: &Target, pool: &aquifer_mysql::MySqlPool, idle: Duration) -> Result<TopReport, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let mut report = TopReport::new(target, &pool.descriptor().system);
    let (version, max): (String, i64) =
        conn.query_first("SELECT VERSION(), @@max_connections").await.map_err(|e| e.to_string())?.unwrap_or_default();
    report.server_version = Some(version);
    let rows: Vec<(String, String, i64, i64)> = conn.query(MY_GROUPS).await.map_err(|e| e.to_string())?;
    let total: i64 = rows.iter().map(|r| r.2).sum();
    report.set_usage(total, max);
    report.groups = rows
        .into_iter()
        .map(|(application, state, sessions, longest)| Group {
            application,
            state,
            sessions,
            longest_s: longest as f64,
        })
        .collect();
    let suspects: Vec<(i64, String, String, String, i64, bool)> =
        conn.exec(MY_SUSPECTS, (idle.as_secs(),)).await.map_err(|e| e.to_string())?;
    report.suspects = suspects
        .into_iter()
        .map(|(id, user, client, command, idle_s, in_trx)| Suspect {
            id,
            user,
            application: String::new(),
            client,
            state: if in_trx { format!("{command} (open transaction)") } else { command },
            idle_s: idle_s as f64,
            reason: if in_trx {
                "sleeping inside an open transaction: holds locks and a connection".into()
            } else {
                format!("idle longer than {}", humantime::format_duration(idle))
            },
        })
        .collect();
    report.notes.push(
        "the processlist carries no application name: sessions are grouped by user and command (Sleep = idle)".into(),
    );
    Ok(report)
}

/// Neo4j (over Bolt), SQLite and any other backend expose no session list: show the pool's own check and say so.
async fn other(target: &Target, pool: &Opened) -> Result<TopReport, String> {
    let health = pool.health().await;
    let mut report = TopReport::new(target, &health.system);
    report.server_version = health.server_version.clone();
    if let Some(e) = health.last_error {
        return Err(e);
    }
    match pool.as_any().downcast_ref::<aquifer_sqlite::SqlitePool>() {
        Some(p) => {
            let path = p.path().to_owned();
            let (journal, pages, page_size, freelist): (String, i64, i64, i64) = p
                .read(|c| {
                    c.query_row(
                        "SELECT (SELECT journal_mode FROM pragma_journal_mode), (SELECT page_count FROM \
                         pragma_page_count), (SELECT page_size FROM pragma_page_size), (SELECT freelist_count FROM \
                         pragma_freelist_count)",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                })
                .await
                .map_err(|e| e.to_string())?;
            let wal = std::fs::metadata(format!("{path}-wal")).map(|m| m.len()).unwrap_or(0);
            report.notes.push(format!(
                "SQLite has no server: {path}, journal_mode {journal}, {} bytes in {pages} pages ({freelist} free), \
                 WAL file {wal} bytes",
                pages * page_size
            ));
        }
        None => report.notes.push(format!(
            "{} exposes no session list to a client: this is the pool's own check (validation round trip)",
            pool.system()
        )),
    }
    if let Some(latency) = health.latency {
        report.notes.push(format!("round trip {:.2} ms", latency.as_secs_f64() * 1000.0));
    }
    Ok(report)
}

fn render(report: &TopReport) -> String {
    let mut out = format!("{}  {}", report.target, report.system);
    if let Some(v) = &report.server_version {
        out.push_str(&format!(" {v}"));
    }
    out.push('\n');
    if let (Some(c), Some(m), Some(u)) = (report.connections, report.max_connections, report.utilization) {
        out.push_str(&format!("connections {c} / max_connections {m} = {:.1} %  [{}]\n", u * 100.0, report.alert));
    }
    if !report.groups.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(["application", "state", "sessions", "longest"]);
        for g in &report.groups {
            table.add_row([
                g.application.clone(),
                g.state.clone(),
                g.sessions.to_string(),
                format!("{:.0} s", g.longest_s),
            ]);
        }
        out.push_str(&format!("{table}\n"));
    }
    if report.suspects.is_empty() {
        if report.max_connections.is_some() {
            out.push_str("leak suspects: none\n");
        }
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "id",
            "user",
            "application",
            "client",
            "state",
            "for",
            "why",
        ]);
        for s in &report.suspects {
            table.add_row([
                s.id.to_string(),
                s.user.clone(),
                s.application.clone(),
                s.client.clone(),
                s.state.clone(),
                format!("{:.0} s", s.idle_s),
                s.reason.clone(),
            ]);
        }
        out.push_str(&format!("leak suspects:\n{table}\n"));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::alert;

    #[test]
    fn alerts_start_at_80_and_95_percent_of_max_connections() {
        assert_eq!(alert(0.0), "ok");
        assert_eq!(alert(0.799), "ok");
        assert_eq!(alert(0.80), "warning");
        assert_eq!(alert(0.949), "warning");
        assert_eq!(alert(0.95), "critical");
        assert_eq!(alert(1.0), "critical");
    }
}

//! The private MariaDB primary and GTID replica: what the primary writes, the replica has; a paused SQL
//! thread holds it back; the replica is read-only until promoted.

use aquifer_testing::PrivateMariaDbCluster;

fn cluster() -> PrivateMariaDbCluster {
    PrivateMariaDbCluster::start().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_row_written_on_the_primary_is_read_on_the_replica() {
    let cluster = cluster();
    assert_ne!(cluster.primary.port(), cluster.replica.port());
    let sql =
        |server: &aquifer_testing::PrivateMariaDb, sql: &str| server.run_sql(sql).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sql(&cluster.replica, "SELECT @@server_id, @@read_only, @@gtid_slave_pos <> ''").trim(), "2\t1\t1");
    sql(
        &cluster.primary,
        "CREATE TABLE test.pair (id INT PRIMARY KEY, v TEXT); INSERT INTO test.pair VALUES (1, 'from the primary')",
    );
    cluster.wait_for_replica().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sql(&cluster.replica, "SELECT v FROM test.pair WHERE id = 1").trim(), "from the primary");
}

#[test]
fn a_stopped_sql_thread_holds_the_replica_back_until_started() {
    let cluster = cluster();
    let sql =
        |server: &aquifer_testing::PrivateMariaDb, sql: &str| server.run_sql(sql).unwrap_or_else(|e| panic!("{e}"));
    sql(&cluster.primary, "CREATE TABLE test.held (id INT PRIMARY KEY)");
    cluster.wait_for_replica().unwrap_or_else(|e| panic!("{e}"));
    cluster.stop_sql_thread().unwrap_or_else(|e| panic!("{e}"));
    sql(&cluster.primary, "INSERT INTO test.held VALUES (1)");
    let position = sql(&cluster.primary, "SELECT @@gtid_binlog_pos");
    // Given a second, the paused replica does not reach the primary's position.
    assert_eq!(sql(&cluster.replica, &format!("SELECT MASTER_GTID_WAIT('{}', 1)", position.trim())).trim(), "-1");
    assert_eq!(sql(&cluster.replica, "SELECT COUNT(*) FROM test.held").trim(), "0", "not applied while paused");
    cluster.start_sql_thread().unwrap_or_else(|e| panic!("{e}"));
    cluster.wait_for_replica().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sql(&cluster.replica, "SELECT COUNT(*) FROM test.held").trim(), "1");
}

#[test]
fn the_promoted_replica_is_read_write_and_replicates_no_more() {
    let mut cluster = cluster();
    cluster.primary.kill();
    cluster.promote_replica().unwrap_or_else(|e| panic!("{e}"));
    let status = cluster
        .replica
        .run_sql("SELECT @@read_only; SHOW STATUS LIKE 'Slave_running'")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, "0\nSlave_running\tOFF\n");
}

//! Many tasks sharing a small pool: everything completes, the pool never grows past its size.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_neo4j::query;

const LABEL: &str = "AqNeoConc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tasks_share_a_pool_of_eight() {
    let pool = common::pool("concurrency_100", 8, None).await;
    let run = common::run_id();
    let most = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (pool, most, stop) = (pool.clone(), most.clone(), stop.clone());
        tokio::spawn(async move {
            // Bounded: at most 60 s of 1 ms samples even if the tasks hang.
            for _ in 0..60_000 {
                most.fetch_max(pool.state().size, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..100i64 {
        let (pool, run) = (pool.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            // A read that checks the answer is this task's own, a write, and a transaction.
            let rows = pool.fetch_all(query("RETURN $i * 2 AS d").param("i", i)).await?;
            assert_eq!(rows[0].get::<i64>("d").unwrap(), i * 2);
            pool.execute(
                query(&format!("CREATE (:{LABEL} {{run: $run, i: $i}})")).param("run", run.as_str()).param("i", i),
            )
            .await?;
            let r = run.clone();
            pool.transaction(move |txn| {
                let run = r.clone();
                Box::pin(async move {
                    txn.run(
                        query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run AND n.i = $i SET n.done = true"))
                            .param("run", run.as_str())
                            .param("i", i),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await?;
            Ok::<_, aquifer_neo4j::Neo4jOperationError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every task succeeds");
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let most = most.load(Ordering::Relaxed);
    assert!(most > 0, "the watcher saw the pool");
    assert!(most <= 8, "the pool grew to {most}");
    assert!(pool.stats().created <= 8, "{:?}", pool.stats());
    assert_eq!(pool.stats().timeouts, 0);
    let done = common::count(
        &pool,
        query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run AND n.done = true RETURN count(n) AS n"))
            .param("run", run.as_str()),
    )
    .await;
    assert_eq!(done, 100);
    common::cleanup(&pool, LABEL, &run).await;
}

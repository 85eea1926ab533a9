//! Connect failures: retries inside the waiting gets, the last error in timeouts, the fail-fast circuit (when
//! it opens, when it must not), backoff that belongs to one run of failures, and recovery after an outage.
//! Time is Tokio's paused clock: outages of seconds run in microseconds, and elapsed times are exact.

mod common;

use std::error::Error as _;
use std::time::Duration;

use aquifer_core::{ConnectError, Pool, PoolError};
use aquifer_testing::{FakeManager, assert_each_cause_once};
use common::{builder, eventually};
use tokio::time::Instant;

const NEVER: Duration = Duration::ZERO;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn timeout_reports_last_connect_error() {
    let fake = FakeManager::new();
    fake.set_connect_error(Some("no pg_hba.conf entry for host \"10.0.0.7\""));
    let pool = builder(&fake).fail_fast_after(NEVER).build().unwrap();
    let err = pool.get_timeout(ms(200)).await.unwrap_err();
    let PoolError::Timeout { last_error: Some(ConnectError::Backend(e)), .. } = &err else {
        panic!("expected a timeout with the last connect error, got {err:?}");
    };
    assert_eq!(e.0, "no pg_hba.conf entry for host \"10.0.0.7\"");
    assert!(err.to_string().contains("no pg_hba.conf entry"), "Display hides the cause: {err}");
    // Display already printed the connect error, so source() does not return it again (FakeError has no source
    // of its own): a chain walker prints it once.
    assert!(err.source().is_none(), "source() repeats what Display said: {:?}", err.source());
    assert_each_cause_once(&err);
    assert_eq!(err.backend_error().map(|e| e.0.as_str()), Some("no pg_hba.conf entry for host \"10.0.0.7\""));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_connect_error_fails_fast_at_the_first_attempt() {
    let fake = FakeManager::new();
    fake.set_connect_error(Some("password authentication failed for user \"app\""));
    let pool =
        builder(&fake).fail_fast_after(Duration::from_secs(5)).connect_backoff(ms(1000), ms(5000)).build().unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Unavailable { .. }), "{err:?}");
    assert_eq!(fake.stats().attempts, 1, "a refused password must not be retried before failing fast");
    assert!(err.is_permanent(), "{err:?}");
    // Worded as what it is: not "unavailable for 2ms", which reads as a passing outage.
    assert_eq!(
        assert_each_cause_once(&err),
        "database refused the connection (permanent error): password authentication failed for user \"app\""
    );
}

#[tokio::test(start_paused = true)]
async fn connect_is_retried_with_backoff_until_it_succeeds() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(NEVER).build().unwrap();
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(Duration::from_secs(5), "a few connects failed", || fake.stats().attempts >= 3).await;
    fake.set_down(false);
    assert!(get.await.unwrap().is_ok());
    assert!(pool.stats().connect_errors >= 3);
}

#[tokio::test(start_paused = true)]
async fn hanging_connect_is_cut_by_connect_timeout_and_reported() {
    let fake = FakeManager::new();
    fake.set_hang(true);
    let pool = builder(&fake).connect_timeout(ms(30)).fail_fast_after(NEVER).build().unwrap();
    let err = pool.get_timeout(ms(300)).await.unwrap_err();
    assert!(
        matches!(&err, PoolError::Timeout { last_error: Some(ConnectError::TimedOut(d)), .. } if *d == ms(30)),
        "{err:?}"
    );
    assert!(err.to_string().contains("connect timed out after 30ms"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_transient_connect_failure_is_retried_inside_the_get_and_never_surfaces() {
    let fake = FakeManager::new();
    fake.set_down(true);
    // The default fail_fast_after (2 s) is far longer than this blip.
    let pool = builder(&fake).build().unwrap();
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(Duration::from_secs(5), "several connects failed", || fake.stats().attempts >= 4).await;
    fake.set_down(false);
    assert!(get.await.unwrap().is_ok(), "a blip of a few failed connects reached the caller");
    assert_eq!(pool.stats().fail_fast, 0);
}

#[tokio::test(start_paused = true)]
async fn the_circuit_opens_after_fail_fast_after_of_failures_without_a_live_connection() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake)
        .acquire_timeout(Duration::from_secs(30))
        .fail_fast_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "failed fast after {waited:?}, before fail_fast_after");
    assert!(waited < ms(1300), "waited {waited:?}: the circuit should open at the first failure after 1 s");
    let PoolError::Unavailable { last_error, .. } = &err else { panic!("expected Unavailable, got {err:?}") };
    assert_eq!(last_error.backend().map(|e| e.0.as_str()), Some("connection refused"));
    assert!(!err.is_permanent(), "{err:?}");
    let shown = assert_each_cause_once(&err);
    assert!(shown.starts_with("database unavailable for ") && shown.ends_with(": connection refused"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn without_the_circuit_a_get_against_a_dead_server_retries_until_its_timeout() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(NEVER).build().unwrap();
    let started = Instant::now();
    let err = pool.get_timeout(Duration::from_secs(3)).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(matches!(&err, PoolError::Timeout { last_error: Some(ConnectError::Backend(_)), .. }), "{err:?}");
    assert!(fake.stats().attempts >= 10, "only {} attempts in 3 s", fake.stats().attempts);
}

#[tokio::test(start_paused = true)]
async fn while_failing_fast_new_gets_fail_at_once_without_connecting() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(ms(100)).connect_backoff(ms(5), Duration::from_secs(5)).build().unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    let attempts = fake.stats().attempts;
    for _ in 0..100 {
        assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    }
    // Only the background probe connects meanwhile (a few attempts at most), not each of the 100 callers.
    let probe_attempts = fake.stats().attempts - attempts;
    assert!(probe_attempts <= 5, "callers tried to connect while the circuit was open: {probe_attempts} attempts");
    assert_eq!(pool.stats().fail_fast, 100);
}

#[tokio::test(start_paused = true)]
async fn every_queued_waiter_fails_fast_when_the_circuit_opens() {
    let fake = FakeManager::new();
    fake.set_connect_delay(ms(20));
    fake.set_down(true);
    let pool =
        builder(&fake).max_size(2).fail_fast_after(ms(200)).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(|_| ()) })
        })
        .collect();
    for w in waiters {
        let res = tokio::time::timeout(Duration::from_secs(5), w).await.expect("waiter woken").unwrap();
        assert!(matches!(res, Err(PoolError::Unavailable { .. })), "{res:?}");
    }
    assert_eq!(pool.state().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn the_circuit_stays_closed_while_a_connection_is_checked_out() {
    let fake = FakeManager::new();
    let pool =
        builder(&fake).max_size(2).fail_fast_after(ms(100)).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    let held = pool.get().await.unwrap();
    fake.set_down(true);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    // Connects fail for ten times fail_fast_after; the checked-out connection can still serve the waiter.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(fake.stats().attempts >= 3);
    assert!(!waiter.is_finished(), "the waiter was failed although a connection is about to come back");
    assert!(matches!(pool.get_timeout(ms(10)).await, Err(PoolError::Timeout { .. })), "a new get failed fast");
    let id = held.id;
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), id, "the returned connection went to the waiter");
}

#[tokio::test(start_paused = true)]
async fn gets_succeed_again_once_the_server_is_back() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(ms(100)).build().unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    fake.set_down(false);
    // The background probe reconnects on its own; no caller has to trigger it.
    eventually(Duration::from_secs(5), "the probe reconnected", || pool.state().idle == 1).await;
    let conn = pool.get().await.expect("the pool recovered");
    drop(conn);
    assert_eq!(pool.health().await.status, aquifer_core::HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_successful_connect_clears_the_last_error() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).max_size(1).fail_fast_after(NEVER).build().unwrap();
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await }
    });
    eventually(Duration::from_secs(5), "a connect failed", || fake.stats().attempts >= 2).await;
    fake.set_down(false);
    let _held = get.await.unwrap().unwrap();
    let err = pool.get_timeout(ms(30)).await.unwrap_err();
    assert!(matches!(err, PoolError::Timeout { last_error: None, .. }), "stale connect error reported: {err:?}");
}

/// Spawns a get with a long timeout that resolves to the tokio instant it was served at.
fn served_at(
    pool: &Pool<FakeManager>,
) -> tokio::task::JoinHandle<Result<Instant, PoolError<aquifer_testing::FakeError>>> {
    let pool = pool.clone();
    tokio::spawn(async move {
        let conn = pool.get_timeout(Duration::from_secs(60)).await?;
        let at = Instant::now();
        drop(conn);
        Ok(at)
    })
}

#[tokio::test(start_paused = true)]
async fn a_success_ends_the_backoff_so_a_new_get_sees_an_attempt_within_the_minimum_backoff() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake)
        .max_size(2)
        .fail_fast_after(NEVER)
        .connect_backoff(ms(50), Duration::from_secs(10))
        .build()
        .unwrap();
    let first = tokio::spawn({
        let pool = pool.clone();
        async move {
            let conn = pool.get_timeout(Duration::from_secs(60)).await?;
            // Keep it: the second get must be served by the connect task that was backing off.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(conn);
            Ok::<_, PoolError<aquifer_testing::FakeError>>(())
        }
    });
    // Long enough for the first connect task's backoff to grow to seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    fake.set_down(false);
    let second = served_at(&pool);
    let asked = Instant::now();
    // The second get starts a connect of its own, which succeeds and (FIFO) serves the first get; that success
    // ends the run of failures, so the first task, asleep in its backoff, must try again at once for the second.
    let at = second.await.unwrap().unwrap();
    assert!(at - asked <= ms(50), "the second get waited {:?} for a task asleep in its backoff", at - asked);
    first.abort();
}

#[tokio::test(start_paused = true)]
async fn while_a_caller_waits_failed_connects_are_retried_at_least_every_200ms() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake)
        .max_size(1)
        .fail_fast_after(NEVER)
        .connect_backoff(ms(50), Duration::from_secs(10))
        .build()
        .unwrap();
    let get = served_at(&pool);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let attempts = fake.stats().attempts;
    assert!(attempts >= 95, "{attempts} attempts in 20 s while a caller waited: the backoff outgrew the demand cap");
    fake.set_down(false);
    let back = Instant::now();
    let at = get.await.unwrap().unwrap();
    assert!(at - back <= ms(200), "served {:?} after the server was back", at - back);
}

#[tokio::test(start_paused = true)]
async fn the_probe_never_sleeps_past_connect_backoff_max() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(ms(100)).connect_backoff(ms(50), Duration::from_secs(1)).build().unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    // Nobody asks any more: the probe paces itself by its backoff alone, capped at 1 s jitter included.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let start = fake.stats().attempts;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let probes = fake.stats().attempts - start;
    assert!(probes >= 9, "{probes} probes in 10 s: the probe slept past connect_backoff_max (1 s)");
}

#[tokio::test(start_paused = true)]
async fn after_a_long_outage_the_first_get_succeeds_within_250ms_of_the_server_answering() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(ms(500)).build().unwrap();
    // Forty seconds of outage with callers being refused every 50 ms: the probe's backoff reaches its 5 s cap.
    let outage_end = Instant::now() + Duration::from_secs(40);
    while Instant::now() < outage_end {
        assert!(pool.get_timeout(ms(50)).await.is_err());
        tokio::time::sleep(ms(50)).await;
    }
    fake.set_down(false);
    let back = Instant::now();
    loop {
        if pool.get_timeout(ms(50)).await.is_ok() {
            break;
        }
        tokio::time::sleep(ms(50)).await;
    }
    let recovered = back.elapsed();
    assert!(recovered <= ms(250), "the first successful get came {recovered:?} after the server was back");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_connect_is_abandoned_at_the_acquire_timeout_and_a_fresh_one_made() {
    let fake = FakeManager::new();
    fake.set_hang(true);
    let pool = builder(&fake)
        .max_size(1)
        .fail_fast_after(NEVER)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    // A black hole: the connect hangs, the caller gives up after its acquire timeout.
    assert!(matches!(pool.get().await, Err(PoolError::Timeout { .. })));
    // The partition heals. The stalled attempt must not hold the only slot for the rest of connect_timeout.
    fake.set_hang(false);
    tokio::time::sleep(ms(10)).await;
    let started = Instant::now();
    pool.get_timeout(Duration::from_secs(20)).await.expect("a fresh connect after the partition healed");
    let waited = started.elapsed();
    assert!(waited <= Duration::from_secs(1), "served {waited:?} after the partition healed (connect_timeout is 10 s)");
}

/// What became of one caller of [`black_hole_load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Ok,
    TimedOut,
    Unavailable,
}

/// Counts of outcomes of callers that ended before and after `heal`, for assertion messages.
fn tally(callers: &[(Instant, Instant, Served)], heal: Instant) -> String {
    let count =
        |after: bool, s: Served| callers.iter().filter(|(_, end, x)| (*end >= heal) == after && *x == s).count();
    format!(
        "before the heal: {} ok, {} timed out, {} refused; after: {} ok, {} timed out, {} refused",
        count(false, Served::Ok),
        count(false, Served::TimedOut),
        count(false, Served::Unavailable),
        count(true, Served::Ok),
        count(true, Served::TimedOut),
        count(true, Served::Unavailable)
    )
}

/// Callers arriving every 50 ms from now until `until`, each a `get()` with the pool's acquire timeout; each
/// yields (when it arrived, when it ended, how).
fn black_hole_load(
    pool: &Pool<FakeManager>,
    until: Instant,
) -> tokio::task::JoinHandle<Vec<(Instant, Instant, Served)>> {
    let pool = pool.clone();
    tokio::spawn(async move {
        let mut callers = Vec::new();
        while Instant::now() < until {
            let pool = pool.clone();
            callers.push(tokio::spawn(async move {
                let arrived = Instant::now();
                let served = match pool.get().await {
                    Ok(_) => Served::Ok,
                    Err(PoolError::Timeout { .. }) => Served::TimedOut,
                    Err(PoolError::Unavailable { .. }) => Served::Unavailable,
                    Err(e) => panic!("unexpected {e:?}"),
                };
                (arrived, Instant::now(), served)
            }));
            tokio::time::sleep(ms(50)).await;
        }
        let mut out = Vec::new();
        for c in callers {
            out.push(c.await.unwrap());
        }
        out
    })
}

/// A network black hole (connects hang: their packets are lost) of 5 s with callers throughout, the pool
/// empty: attempts time out after 2 s (the acquire timeout), and those begun during the outage keep timing out
/// after it heals. None of them may open the circuit once the server answers again (it used to, refusing
/// callers for a second), and the first success comes within 250 ms of the heal.
#[tokio::test(start_paused = true)]
async fn the_circuit_does_not_open_after_a_black_hole_heals_on_attempts_begun_during_it() {
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(10))
        .fail_fast_after(Duration::from_secs(2))
        .connect_backoff(ms(50), Duration::from_secs(5))
        .build()
        .unwrap();
    fake.set_hang(true);
    let start = Instant::now();
    let load = black_hole_load(&pool, start + Duration::from_secs(8));
    tokio::time::sleep(Duration::from_secs(5)).await;
    fake.set_hang(false);
    let heal = Instant::now();
    let callers = load.await.unwrap();
    let refused_after_heal = callers.iter().filter(|(_, end, s)| *s == Served::Unavailable && *end >= heal).count();
    assert_eq!(refused_after_heal, 0, "callers refused after the heal: {}", tally(&callers, heal));
    let first_ok = callers.iter().filter(|(_, _, s)| *s == Served::Ok).map(|(_, end, _)| *end).min().unwrap();
    assert!(
        first_ok - heal <= ms(250),
        "the first success came {:?} after the heal; {}",
        first_ok - heal,
        tally(&callers, heal)
    );
    let failed_after = callers.iter().filter(|(arrived, _, s)| *arrived >= heal && *s != Served::Ok).count();
    assert_eq!(failed_after, 0, "a caller arriving after the heal failed: {}", tally(&callers, heal));
    assert_eq!(pool.stats().fail_fast, 0, "{:?}", pool.stats());
}

/// A black hole that lasts still opens the circuit (callers fail fast instead of waiting out their timeout),
/// one attempt timeout after `fail_fast_after` has passed since the first failure was seen; once it heals,
/// hedged attempts reach the server within 250 ms although the probe's own attempt is stalled.
#[tokio::test(start_paused = true)]
async fn a_black_hole_that_lasts_opens_the_circuit_and_its_heal_is_noticed_within_250ms() {
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(10))
        .fail_fast_after(Duration::from_secs(2))
        .connect_backoff(ms(50), Duration::from_secs(5))
        .build()
        .unwrap();
    fake.set_hang(true);
    let start = Instant::now();
    let load = black_hole_load(&pool, start + Duration::from_secs(14));
    tokio::time::sleep(Duration::from_secs(12)).await;
    fake.set_hang(false);
    let heal = Instant::now();
    let callers = load.await.unwrap();
    let refused: Vec<Instant> =
        callers.iter().filter(|(_, _, s)| *s == Served::Unavailable).map(|(_, end, _)| *end).collect();
    let opened = *refused.iter().min().expect("the circuit opened during a 12 s black hole");
    // First failure seen at 2 s; attempts begun from 4 s on time out from 6 s on.
    assert!(opened - start >= Duration::from_secs(6), "opened {:?} into the outage", opened - start);
    assert!(opened - start <= ms(6300), "opened {:?} into the outage", opened - start);
    let first_ok = callers.iter().filter(|(_, _, s)| *s == Served::Ok).map(|(_, end, _)| *end).min().unwrap();
    assert!(
        first_ok >= heal && first_ok - heal <= ms(250),
        "the first success came {:?} after the heal",
        first_ok - heal
    );
    let last_refused = refused.iter().max().unwrap();
    assert!(*last_refused <= first_ok, "a caller was refused after the first success");
}

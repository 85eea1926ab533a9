//! Checkout and return hooks and per-checkout session contexts: hooks compose in registration order, a hook
//! that fails, panics or times out discards the connection (never lends it), and a context's settings never
//! reach the next caller, whatever the caller does (cancel, panic) and whatever fails (apply, clear, reset).
//!
//! The fake connection's `uses` field stands for the session state a context sets (`SET app.tenant_id`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use aquifer_core::{BoxError, HookFailure, PoolError, SessionContext};
use aquifer_testing::{FakeConn, FakeManager};
use common::{assert_quiescent, builder, eventually, fake_pool, fake_pool_with};
use parking_lot::Mutex;
use proptest::prelude::*;

type Log = Arc<Mutex<Vec<String>>>;

fn logging(log: &Log, entry: &str) -> impl for<'c> Fn(&'c mut FakeConn) -> aquifer_core::HookFuture<'c> + use<> {
    let (log, entry) = (Arc::clone(log), entry.to_owned());
    move |_conn| {
        log.lock().push(entry.clone());
        Box::pin(async { Ok(()) })
    }
}

/// How a hook or a context step misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Fail,
    Panic,
    Hang,
}

async fn step(fault: Fault) -> Result<(), BoxError> {
    match fault {
        Fault::None => Ok(()),
        Fault::Fail => Err("injected failure".into()),
        Fault::Panic => panic!("injected panic"),
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }
}

/// A tenant context: `uses` holds the tenant while applied, 0 once cleared.
struct Tenant {
    id: u64,
    apply: Fault,
    clear: Fault,
    /// A yield inside apply, so a cancellation can land between "set" and the end of the checkout.
    slow_apply: bool,
}

impl Tenant {
    fn new(id: u64) -> Arc<Self> {
        Arc::new(Tenant { id, apply: Fault::None, clear: Fault::None, slow_apply: false })
    }
}

#[aquifer_core::async_trait]
impl SessionContext<FakeConn> for Tenant {
    fn name(&self) -> &str {
        "tenant"
    }

    async fn apply(&self, conn: &mut FakeConn) -> Result<(), BoxError> {
        conn.uses = self.id;
        if self.slow_apply {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        step(self.apply).await
    }

    async fn clear(&self, conn: &mut FakeConn) -> Result<(), BoxError> {
        step(self.clear).await?;
        conn.uses = 0;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn hooks_compose_in_registration_order_and_none_replaces_another() {
    let log = Log::default();
    let (fake, pool) = fake_pool_with(|b| {
        b.max_size(1)
            .on_checkout("first", logging(&log, "checkout 1"))
            .on_checkout("second", logging(&log, "checkout 2"))
            .on_return("third", logging(&log, "return 1"))
            .on_return("fourth", logging(&log, "return 2"))
    });
    let conn = pool.get().await.unwrap();
    assert_eq!(*log.lock(), ["checkout 1", "checkout 2"]);
    drop(conn);
    eventually(Duration::from_secs(1), "the return hooks ran", || log.lock().len() == 4).await;
    assert_eq!(*log.lock(), ["checkout 1", "checkout 2", "return 1", "return 2"]);
    // The same connection, ready again: hooks run on every checkout.
    let again = pool.get().await.unwrap();
    assert_eq!(log.lock()[4..], ["checkout 1", "checkout 2"]);
    drop(again);
    eventually(Duration::from_secs(1), "returned", || pool.state().idle == 1).await;
    assert_eq!(fake.stats().created, 1);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_failing_panicking_or_hanging_checkout_hook_discards_the_connection_and_names_the_hook() {
    for fault in [Fault::Fail, Fault::Panic, Fault::Hang] {
        let fake = FakeManager::new();
        let fail_once = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pool = builder(&fake)
            .max_size(1)
            .hook_timeout(Duration::from_millis(100))
            .on_checkout("statement_timeout", {
                let fail_once = Arc::clone(&fail_once);
                move |_conn| {
                    let faulty = fail_once.swap(false, std::sync::atomic::Ordering::SeqCst);
                    Box::pin(async move { step(if faulty { fault } else { Fault::None }).await })
                }
            })
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        let err = pool.get().await.unwrap_err();
        let PoolError::Hook { hook, cause } = &err else { panic!("{fault:?}: expected PoolError::Hook, got {err:?}") };
        assert_eq!(&**hook, "statement_timeout");
        match (fault, cause) {
            (Fault::Fail, HookFailure::Failed(e)) => assert_eq!(e.to_string(), "injected failure"),
            (Fault::Panic, HookFailure::Panicked(m)) => assert!(m.contains("injected panic"), "{m}"),
            (Fault::Hang, HookFailure::TimedOut(d)) => {
                assert_eq!(*d, Duration::from_millis(100));
                assert!(started.elapsed() < Duration::from_secs(1), "bounded by hook_timeout");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("\"statement_timeout\""), "{err}");
        let stats = pool.stats();
        assert_eq!(stats.closed_hook_failed, 1, "{fault:?}: {stats:?}");
        assert_eq!(stats.panics, u64::from(fault == Fault::Panic), "{stats:?}");
        // The pool keeps serving, with a new connection: the one the hook failed on was never lent.
        let conn = pool.get().await.unwrap();
        assert_eq!(fake.stats().created, 2, "{fault:?}");
        drop(conn);
        assert_quiescent(&pool, &fake);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_panicking_or_hanging_return_hook_discards_the_connection() {
    for fault in [Fault::Fail, Fault::Panic, Fault::Hang] {
        let (fake, pool) = fake_pool_with(|b| {
            b.max_size(1)
                .hook_timeout(Duration::from_millis(100))
                .on_return("discard temp tables", move |_conn| Box::pin(step(fault)))
        });
        let first = pool.get().await.unwrap().id;
        eventually(Duration::from_secs(2), "the connection was discarded", || pool.stats().closed_hook_failed == 1)
            .await;
        let next = pool.get().await.unwrap();
        assert_ne!(next.id, first, "{fault:?}: a connection whose return hook failed was reused");
        assert_eq!(pool.stats().panics, u64::from(fault == Fault::Panic));
        drop(next);
        eventually(Duration::from_secs(2), "quiet", || pool.stats().closed_hook_failed == 2).await;
        assert_quiescent(&pool, &fake);
    }
}

#[tokio::test(start_paused = true)]
async fn a_checkout_cancelled_while_a_hook_runs_closes_the_connection() {
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .max_size(1)
        .on_checkout("slow", |conn| {
            Box::pin(async move {
                conn.uses = 99; // half-applied state
                tokio::time::sleep(Duration::from_secs(1)).await;
                conn.uses = 0;
                Ok(())
            })
        })
        .build()
        .unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(10), pool.get()).await.is_err());
    assert_eq!(pool.stats().closed_discarded, 1, "{:?}", pool.stats());
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.uses, 0);
    drop(conn);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_context_is_applied_for_one_checkout_and_cleared_before_the_next() {
    let log = Log::default();
    let (fake, pool) = fake_pool_with(|b| {
        b.max_size(1).on_checkout("hook", logging(&log, "checkout")).on_return("hook", logging(&log, "return"))
    });
    let conn = pool.get_with(Tenant::new(7)).await.unwrap();
    assert_eq!(conn.uses, 7);
    drop(conn);
    let next = pool.get().await.unwrap();
    assert_eq!(next.uses, 0, "tenant 7's setting reached the next caller");
    assert_eq!(fake.stats().created, 1, "the cleared connection is reused");
    drop(next);
    eventually(Duration::from_secs(1), "returned", || pool.state().idle == 1).await;
    // The context comes after the checkout hooks and is cleared before the return hooks: visible in that
    // the return hooks see nothing to clean up; the order of the hooks themselves is unchanged.
    assert_eq!(*log.lock(), ["checkout", "return", "checkout", "return"]);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_context_that_fails_to_apply_fails_the_checkout_and_discards_the_connection() {
    for fault in [Fault::Fail, Fault::Panic, Fault::Hang] {
        let (fake, pool) = fake_pool_with(|b| b.max_size(1).hook_timeout(Duration::from_millis(50)));
        let ctx = Arc::new(Tenant { id: 3, apply: fault, clear: Fault::None, slow_apply: false });
        let err = pool.get_with(ctx).await.unwrap_err();
        assert!(matches!(&err, PoolError::Hook { hook, .. } if &**hook == "tenant"), "{err:?}");
        assert_eq!(pool.stats().closed_hook_failed, 1);
        let next = pool.get().await.unwrap();
        assert_eq!(next.uses, 0, "{fault:?}: a half-applied context was lent");
        drop(next);
        assert_quiescent(&pool, &fake);
    }
}

#[tokio::test(start_paused = true)]
async fn a_context_whose_clear_fails_discards_the_connection() {
    for fault in [Fault::Fail, Fault::Panic, Fault::Hang] {
        let (fake, pool) = fake_pool_with(|b| b.max_size(1).hook_timeout(Duration::from_millis(50)));
        let ctx = Arc::new(Tenant { id: 5, apply: Fault::None, clear: fault, slow_apply: false });
        let conn = pool.get_with(ctx).await.unwrap();
        let first = conn.id;
        drop(conn);
        let next = pool.get().await.unwrap();
        assert_ne!(next.id, first, "{fault:?}: a connection whose clear failed was reused");
        assert_eq!(next.uses, 0);
        assert_eq!(pool.stats().closed_hook_failed, 1);
        drop(next);
        assert_quiescent(&pool, &fake);
    }
}

#[tokio::test(start_paused = true)]
async fn the_context_is_cleared_after_a_panic_in_user_code_and_after_a_reset() {
    let (fake, pool) = fake_pool(1);
    // A panic while holding the connection: it is dropped during unwinding, the context is still cleared.
    let task = tokio::spawn({
        let pool = pool.clone();
        async move {
            let _conn = pool.get_with(Tenant::new(9)).await.unwrap();
            panic!("user code panics");
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(pool.get().await.unwrap().uses, 0);
    // Returned dirty (an abandoned query): the manager's reset runs first, then the clear.
    let mut conn = pool.get_with(Tenant::new(4)).await.unwrap();
    conn.dirty = true;
    drop(conn);
    let next = pool.get().await.unwrap();
    assert_eq!((next.uses, fake.stats().resets), (0, 1));
    drop(next);
    // A failed reset discards it: the context's clear never runs on a connection that could not be reset.
    fake.set_fail_reset(true);
    let mut conn = pool.get_with(Tenant::new(4)).await.unwrap();
    let id = conn.id;
    conn.dirty = true;
    drop(conn);
    let next = pool.get().await.unwrap();
    assert_ne!(next.id, id);
    assert_eq!(next.uses, 0);
    drop(next);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_cancelled_between_set_and_the_end_of_apply_closes_the_connection() {
    let (fake, pool) = fake_pool(1);
    let ctx = Arc::new(Tenant { id: 8, apply: Fault::None, clear: Fault::None, slow_apply: true });
    assert!(tokio::time::timeout(Duration::from_millis(1), pool.get_with(ctx)).await.is_err());
    let next = pool.get().await.unwrap();
    assert_eq!(next.uses, 0, "a half-applied context reached the next caller");
    assert_eq!(pool.stats().closed_discarded, 1);
    drop(next);
    assert_quiescent(&pool, &fake);
}

/// One request of the property test.
#[derive(Debug, Clone)]
struct Request {
    /// 0: no context.
    tenant: u64,
    /// Cancel the request after this many yields (None: run to the end).
    cancel_after: Option<u8>,
    panic: bool,
    dirty: bool,
    clear_fails: bool,
}

fn request() -> impl Strategy<Value = Request> {
    (0..4u64, prop::option::weighted(0.3, 0..4u8), prop::bool::weighted(0.1), any::<bool>(), prop::bool::weighted(0.1))
        .prop_map(|(tenant, cancel_after, panic, dirty, clear_fails)| Request {
            tenant,
            cancel_after,
            panic,
            dirty,
            clear_fails,
        })
}

/// Runs one request: checks what it sees (never another tenant's setting), then maybe misbehaves.
async fn serve(pool: aquifer_core::Pool<FakeManager>, r: Request) -> Result<(), String> {
    let work = async {
        let mut conn = if r.tenant == 0 {
            pool.get().await
        } else {
            let clear = if r.clear_fails { Fault::Fail } else { Fault::None };
            pool.get_with(Arc::new(Tenant { id: r.tenant, apply: Fault::None, clear, slow_apply: true })).await
        }
        .map_err(|e| e.to_string())?;
        if conn.uses != r.tenant {
            return Err(format!("request for tenant {} saw tenant {}", r.tenant, conn.uses));
        }
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        conn.dirty = r.dirty;
        if r.panic {
            panic!("user code panics");
        }
        Ok(())
    };
    match r.cancel_after {
        // Cancelled at some await point: `timeout` with a deadline a few yields away drops the future.
        Some(n) => match tokio::time::timeout(Duration::from_millis(u64::from(n) * 3), work).await {
            Ok(result) => result,
            Err(_) => Ok(()),
        },
        None => work.await,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random interleavings of tenants, cancellations, panics, dirty returns and failing clears over a
    /// small pool: no request ever sees a setting it did not make, and the pool's accounting stays true.
    #[test]
    fn no_request_sees_another_tenants_setting(requests in prop::collection::vec(request(), 1..48)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let fake = FakeManager::new();
        let seen: Vec<Result<(), String>> = rt.block_on(async {
            let pool = aquifer_core::Pool::builder(fake.clone()).max_size(3).build().unwrap();
            let tasks: Vec<_> = requests.into_iter().map(|r| tokio::spawn(serve(pool.clone(), r))).collect();
            let mut seen = Vec::new();
            for t in tasks {
                match t.await {
                    Ok(r) => seen.push(r),
                    Err(e) if e.is_panic() => {}
                    Err(e) => seen.push(Err(e.to_string())),
                }
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while pool.state().in_use > 0 || pool.state().idle != pool.state().size {
                assert!(tokio::time::Instant::now() < deadline, "the pool did not settle: {}", pool.state());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen
        });
        for r in seen {
            prop_assert!(r.is_ok(), "{:?}", r);
        }
        prop_assert_eq!(fake.double_closes(), 0);
    }
}

/// A manager whose connections other clients share between transactions (as PostgreSQL's behind PgBouncer
/// in transaction mode): it refuses session-level state, or panics when asked.
struct SharedServer {
    fake: FakeManager,
    panics: bool,
}

#[aquifer_core::async_trait]
impl aquifer_core::Manager for SharedServer {
    type Connection = FakeConn;
    type Error = aquifer_testing::FakeError;

    async fn connect(&self) -> Result<FakeConn, Self::Error> {
        aquifer_core::Manager::connect(&self.fake).await
    }

    async fn validate(&self, conn: &mut FakeConn) -> Result<(), Self::Error> {
        aquifer_core::Manager::validate(&self.fake, conn).await
    }

    fn descriptor(&self) -> aquifer_core::Descriptor {
        aquifer_core::Manager::descriptor(&self.fake)
    }

    fn session_context_refusal(&self) -> Option<&str> {
        assert!(!self.panics, "injected panic in session_context_refusal");
        Some("server connections are shared between transactions")
    }
}

#[tokio::test(start_paused = true)]
async fn a_manager_that_refuses_session_state_fails_every_context_door_before_a_checkout() {
    for panics in [false, true] {
        let fake = FakeManager::new();
        let pool =
            aquifer_core::Pool::builder(SharedServer { fake: fake.clone(), panics }).max_size(1).build().unwrap();
        let doors = [
            pool.get_with(Tenant::new(1)).await.map(|_| ()),
            pool.get_timeout_with(Duration::from_secs(1), Tenant::new(2)).await.map(|_| ()),
        ];
        for err in doors.into_iter().map(Result::unwrap_err) {
            assert!(
                matches!(&err, PoolError::Hook { hook, cause: HookFailure::Refused(_) } if &**hook == "tenant"),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(text.contains("no connection was checked out"), "{text}");
            assert!(text.contains(if panics { "injected panic" } else { "shared between transactions" }), "{text}");
        }
        assert_eq!(fake.stats().created, 0, "a refused context opened a connection");
        assert_eq!(pool.stats().closed_hook_failed, 0, "nothing was checked out, so nothing was discarded");
        // A plain checkout is untouched by the refusal.
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.uses, 0);
        drop(conn);
        assert_eq!(pool.stats().panics, u64::from(panics) * 2, "a panicking refusal is counted like a hook panic");
    }
}

//! Credentials that change while the pool runs, without a server: a provider of this test's own on Tokio's
//! paused clock, and password files on disk. (The adapters' rotation tests run the same rules against real
//! servers under load.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use aquifer_core::{Credential, CredentialError, Credentials, ProviderError, Secret};
use aquifer_testing::SecretScan;

const TOKEN_LIFE: Duration = Duration::from_secs(900);
const AHEAD: Duration = Duration::from_secs(60);

/// A provider handing out `token-0`, `token-1`, ... valid for 15 minutes, failing while `fail` is set.
fn provider(secret_prefix: &'static str) -> (Credentials, Arc<AtomicU32>, Arc<AtomicBool>) {
    let (calls, fail) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicBool::new(false)));
    let (c, f) = (Arc::clone(&calls), Arc::clone(&fail));
    let credentials = Credentials::provider_fn("test-iam", AHEAD, move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let failing = f.load(Ordering::SeqCst);
        async move {
            if failing {
                return Err::<Credential, ProviderError>("the token service is down".into());
            }
            Ok(Credential::expiring(format!("{secret_prefix}-{n}"), SystemTime::now() + TOKEN_LIFE))
        }
    });
    (credentials, calls, fail)
}

async fn current(credentials: &Credentials) -> Result<String, CredentialError> {
    Ok(credentials.current().await?.expect("a provider always gives a password").expose().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_token_is_refreshed_ahead_of_its_expiry_in_the_background() {
    let (credentials, calls, _) = provider("token");
    assert_eq!(current(&credentials).await.unwrap(), "token-0");
    // Just before the refresh is due nothing is fetched: connects take the held token.
    tokio::time::sleep(TOKEN_LIFE - AHEAD - Duration::from_secs(1)).await;
    assert_eq!((current(&credentials).await.unwrap(), calls.load(Ordering::SeqCst)), ("token-0".into(), 1));
    // Once due, the background task fetches the next one; the caller never waited on the provider.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((current(&credentials).await.unwrap(), calls.load(Ordering::SeqCst)), ("token-1".into(), 2));
    assert_eq!(credentials.generation(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_last_token_until_it_expires_then_names_the_provider() {
    let (credentials, calls, fail) = provider("token");
    assert_eq!(current(&credentials).await.unwrap(), "token-0");
    fail.store(true, Ordering::SeqCst);
    // Past the refresh point: the refresh fails (and is retried), the held token still serves.
    tokio::time::sleep(TOKEN_LIFE - AHEAD + Duration::from_secs(5)).await;
    assert!(calls.load(Ordering::SeqCst) >= 2, "the refresh was attempted");
    assert_eq!(current(&credentials).await.unwrap(), "token-0");
    // Past the expiry: no valid token is left, and the error names the provider and its failure.
    tokio::time::sleep(AHEAD).await;
    let err = current(&credentials).await.unwrap_err();
    assert_eq!(
        err,
        CredentialError::Provider { provider: "test-iam".into(), reason: "the token service is down".into() }
    );
    // The provider recovers: the next ask fetches a fresh token.
    fail.store(false, Ordering::SeqCst);
    assert!(current(&credentials).await.unwrap().starts_with("token-"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_password_is_asked_again_once() {
    let (credentials, calls, _) = provider("token");
    let tried = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let attempt = |secret: Option<Secret>| {
        let tried = Arc::clone(&tried);
        async move {
            let secret = secret.expect("a provider's password").expose().to_owned();
            tried.lock().push(secret.clone());
            // The server knows only the second token: the first is refused.
            if secret == "token-1" { Ok(secret) } else { Err("password refused".to_owned()) }
        }
    };
    let connected = credentials.connect(attempt, |e: &String| e == "password refused", |e| e.to_string()).await;
    assert_eq!(connected.as_deref(), Ok("token-1"));
    assert_eq!(*tried.lock(), ["token-0", "token-1"]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A refusal that a new password does not cure is not tried a third time.
    let refused = credentials
        .connect(|_| async { Err::<(), _>("password refused".to_owned()) }, |_| true, |e| e.to_string())
        .await;
    assert_eq!(refused, Err("password refused".to_owned()));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "asked once more, then gave up");
}

#[tokio::test]
async fn the_url_password_is_never_asked() {
    let credentials = Credentials::url();
    assert!(credentials.is_url());
    assert_eq!(credentials.current().await, Ok(None));
    let calls = AtomicU32::new(0);
    let refused = credentials
        .connect(
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("refused") }
            },
            |_| true,
            |_| "no credentials",
        )
        .await;
    assert_eq!((refused, calls.load(Ordering::SeqCst)), (Err("refused"), 1));
}

#[tokio::test]
async fn a_rewritten_password_file_is_used_by_the_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("password");
    let file = aquifer_testing::PasswordFile::create(&path, "first").unwrap();
    let credentials = Credentials::file(&path);
    assert_eq!(credentials.current().await.unwrap().unwrap().expose(), "first");
    file.write("second-and-longer").unwrap();
    assert_eq!(credentials.current().await.unwrap().unwrap().expose(), "second-and-longer");
    assert_eq!(credentials.generation(), 1);
}

#[tokio::test]
async fn a_password_file_and_a_provider_together_are_refused() {
    let (provider, _, _) = provider("token");
    let err = Credentials::from_config(Some("/run/secrets/pw".as_ref()), &provider).unwrap_err();
    assert!(
        err.to_string().contains("password_file = /run/secrets/pw: cannot be used together with credentials"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_credential_appears_in_any_output() {
    let mut scan = SecretScan::start("Sekr3t-token");
    let (credentials, _, fail) = provider("Sekr3t-token");
    let secret = credentials.current().await.unwrap().unwrap();
    scan.seen(&secret);
    scan.push(format!("{credentials:?}"));
    fail.store(true, Ordering::SeqCst);
    // A failed refresh is logged (warn); then the expiry error.
    tokio::time::sleep(TOKEN_LIFE + Duration::from_secs(1)).await;
    scan.seen(&credentials.current().await.unwrap_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, "Sekr3t-token\n").unwrap();
    let file = Credentials::file(&path);
    scan.seen(&file.current().await.unwrap().unwrap());
    scan.push(format!("{file:?}"));
    scan.assert_clean();
}

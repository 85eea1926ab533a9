//! [`Credentials`]: where a pool's password comes from, asked by the adapter's manager before every new
//! connection, so a password that changes while the service runs (a Kubernetes secret re-mounted, a Vault
//! lease, an RDS IAM token that expires every 15 minutes) needs no restart.
//!
//! Three sources: the URL's own password (the default: nothing to ask), a file re-read when it changes
//! (`{PREFIX}_PASSWORD_FILE`, the Docker and Kubernetes convention), and a [`CredentialProvider`] of the
//! service's own for tokens with an expiry, refreshed in the background ahead of the expiry so that a connect
//! never waits on token generation. A failed refresh keeps the last token while it is valid, logs and counts
//! the failure, and is reported as a [`CredentialError`] naming the provider once the token has expired; the
//! secret itself never appears in any of these.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// A password or token. `Debug` and `Display` show `***`; [`expose`](Secret::expose) gives it to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password or token.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What a [`CredentialProvider`] hands out: a password or token, and when it stops working.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The password or token.
    pub secret: Secret,
    /// When the server stops accepting it (an IAM token's expiry, a lease's end); `None` for a password that
    /// is valid until it is changed.
    pub expires_at: Option<SystemTime>,
}

impl Credential {
    /// A credential that expires at `expires_at`.
    pub fn expiring(secret: impl Into<String>, expires_at: SystemTime) -> Self {
        Credential { secret: Secret::new(secret), expires_at: Some(expires_at) }
    }

    /// A credential without an expiry.
    pub fn new(secret: impl Into<String>) -> Self {
        Credential { secret: Secret::new(secret), expires_at: None }
    }
}

/// The error a [`CredentialProvider`] returns; its message must not hold the secret.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A source of tokens with an expiry, written by the service: an RDS IAM token generator, a Vault client, a
/// cloud SDK's token source. Aquifer calls [`fetch`](CredentialProvider::fetch) in the background, ahead of
/// the current token's expiry (and once at start-up), never on a connect's path once a token is held.
///
/// A closure returning a future is a provider ([`Credentials::provider_fn`]), so no cloud SDK is needed to
/// build Aquifer.
#[crate::async_trait]
pub trait CredentialProvider: Send + Sync + 'static {
    /// The provider's name in errors, logs and metrics (`rds-iam`, `vault`): never a secret.
    fn name(&self) -> &str;
    /// Fetches a fresh credential.
    async fn fetch(&self) -> Result<Credential, ProviderError>;
}

/// Why no password could be had for a new connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The password file could not be read.
    #[error("cannot read the password file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why (the I/O error; never the file's content).
        reason: String,
    },
    /// The provider failed and no valid credential is left: the last one expired (or none was ever fetched).
    #[error("credential provider {provider} failed and no valid credential is left: {reason}")]
    Provider {
        /// The provider's [`name`](CredentialProvider::name).
        provider: String,
        /// The provider's last error, as it displays it.
        reason: String,
    },
}

/// Where a pool's password comes from; asked before every new connection. Cheap to clone: clones share the
/// source, its cache and its refresh task.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use aquifer_core::{Credential, Credentials};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), aquifer_core::CredentialError> {
/// // A token source of the service's own (here a counter), refreshed 60 s before each token expires.
/// let issued = std::sync::atomic::AtomicU32::new(0);
/// let credentials = Credentials::provider_fn("demo-iam", Duration::from_secs(60), move || {
///     let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///     async move {
///         Ok(Credential::expiring(format!("token-{n}"), SystemTime::now() + Duration::from_secs(900)))
///     }
/// });
/// let first = credentials.current().await?.expect("a provider always gives a password");
/// assert_eq!(first.expose(), "token-0");
/// assert_eq!(format!("{first:?}"), "Secret(***)");
/// // Asked again before the refresh is due: the same token, without calling the provider.
/// assert_eq!(credentials.current().await?.unwrap().expose(), "token-0");
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Credentials {
    source: Source,
}

#[derive(Clone, Default)]
enum Source {
    /// The URL's own password.
    #[default]
    Url,
    File(Arc<FileSource>),
    Provider(Arc<ProviderSource>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Url => f.write_str("Credentials::Url"),
            Source::File(file) => f.debug_tuple("Credentials::File").field(&file.path).finish(),
            Source::Provider(p) => f.debug_tuple("Credentials::Provider").field(&p.provider.name()).finish(),
        }
    }
}

/// Two configs are equal when they share the same source (the URL's, the same file, the same provider).
impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        match (&self.source, &other.source) {
            (Source::Url, Source::Url) => true,
            (Source::File(a), Source::File(b)) => a.path == b.path,
            (Source::Provider(a), Source::Provider(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Credentials {}

impl Credentials {
    /// The URL's own password (the default): nothing is asked.
    pub fn url() -> Self {
        Credentials { source: Source::Url }
    }

    /// The content of `path` (a trailing newline removed), re-read whenever the file changes (its
    /// modification time or size), so a re-mounted Kubernetes secret or a Vault agent's rewrite is used by
    /// the next connection. The check is a `stat` of a local file per connect, done in place.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Credentials {
            source: Source::File(Arc::new(FileSource {
                path: path.into(),
                cache: Mutex::new(None),
                generation: AtomicU64::new(0),
            })),
        }
    }

    /// Tokens from `provider`, fetched once when first asked, then refreshed in the background
    /// `refresh_ahead` before each expires (credentials without an expiry are not refreshed until an
    /// authentication failure asks for a new one).
    pub fn provider(provider: impl CredentialProvider, refresh_ahead: Duration) -> Self {
        Credentials {
            source: Source::Provider(Arc::new(ProviderSource {
                provider: Box::new(provider),
                refresh_ahead,
                state: Mutex::new(ProviderState::default()),
                fetching: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
            })),
        }
    }

    /// [`Credentials::provider`] from a name and a closure returning a future of a [`Credential`]: an RDS
    /// IAM token generator or a Vault read in a few lines, without a trait impl.
    pub fn provider_fn<F, Fut>(name: impl Into<String>, refresh_ahead: Duration, fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Credential, ProviderError>> + Send + 'static,
    {
        Self::provider(FnProvider { name: name.into(), fetch }, refresh_ahead)
    }

    /// The source a config describes with its two fields: `password_file` (`{PREFIX}_PASSWORD_FILE`, from serde
    /// and the environment) or `credentials` (a provider set in code); both at once is a configuration error
    /// naming `password_file`.
    pub fn from_config(
        password_file: Option<&Path>,
        credentials: &Credentials,
    ) -> Result<Credentials, crate::ConfigError> {
        match (password_file, credentials.is_url()) {
            (None, _) => Ok(credentials.clone()),
            (Some(path), true) => Ok(Credentials::file(path)),
            (Some(path), false) => Err(crate::ConfigError::Invalid {
                field: "password_file",
                value: path.display().to_string(),
                reason: format!("cannot be used together with credentials ({credentials:?}); choose one source"),
            }),
        }
    }

    /// True for the URL's own password (nothing to ask).
    pub fn is_url(&self) -> bool {
        matches!(self.source, Source::Url)
    }

    /// The password for the next connection: `None` means the URL's own. A file is re-read if it changed; a
    /// provider's held token is returned at once (the first call fetches one and starts the refresh task).
    ///
    /// Cancel safety: dropping the future abandons the wait; a fetch already started finishes for the next
    /// caller.
    pub async fn current(&self) -> Result<Option<Secret>, CredentialError> {
        match &self.source {
            Source::Url => Ok(None),
            Source::File(file) => file.read(false).map(Some),
            Source::Provider(p) => p.current().await.map(Some),
        }
    }

    /// Called after the server refused `used` (an authentication failure): re-reads the file, or fetches a
    /// new token now, and says whether the password changed, in which case the connect is tried once more
    /// with it. Right after a rotation the old password may be cached for up to one `stat` tick, or the
    /// server may have been changed before the file: this is the one retry that covers both orders.
    pub async fn refresh_after_refusal(&self, used: &Secret) -> bool {
        match &self.source {
            Source::Url => false,
            Source::File(file) => file.read(true).is_ok_and(|s| &s != used),
            Source::Provider(p) => p.refresh(true).await.is_ok_and(|s| &s != used),
        }
    }

    /// Opens a connection with the current password (`connect(None)` for the URL's own), and once more when
    /// the server refuses it (`is_refusal`) and the source then has a different one: the
    /// re-ask-once-after-a-rotation rule, written once for every adapter's `Manager::connect`. A password
    /// that cannot be had becomes the driver's error through `error`.
    ///
    /// Cancel safety: dropping the future drops the connect in flight (the driver's own cancel safety).
    pub async fn connect<C, E, Fut>(
        &self,
        connect: impl Fn(Option<Secret>) -> Fut,
        is_refusal: impl Fn(&E) -> bool,
        error: impl Fn(CredentialError) -> E,
    ) -> Result<C, E>
    where
        Fut: std::future::Future<Output = Result<C, E>>,
    {
        let secret = self.current().await.map_err(&error)?;
        match connect(secret.clone()).await {
            Err(e) if is_refusal(&e) => match &secret {
                Some(used) if self.refresh_after_refusal(used).await => {
                    tracing::debug!(target: "aquifer::credentials", "password refused; retrying once with the new one");
                    connect(self.current().await.map_err(&error)?).await
                }
                _ => Err(e),
            },
            result => result,
        }
    }

    /// How many times the password has changed since this source was made (0 until the first change after
    /// the first read): connections opened with an older generation hold an old password.
    pub fn generation(&self) -> u64 {
        match &self.source {
            Source::Url => 0,
            Source::File(file) => file.generation.load(Ordering::Acquire),
            Source::Provider(p) => p.generation.load(Ordering::Acquire),
        }
    }

    /// [`generation`](Credentials::generation) after re-reading a password file that changed since it was
    /// last read (one `stat` of a local file), so that a rotation is seen even while no connection is
    /// opened. A provider's generation moves with its background refresh; the URL's is always 0. A file that
    /// cannot be read leaves the generation as it was (the next connect reports the error).
    pub fn generation_now(&self) -> u64 {
        if let Source::File(file) = &self.source {
            let _ = file.read(false);
        }
        self.generation()
    }
}

/// A file's modification time and length: when either changes, the file is read again.
type Stamp = (Option<SystemTime>, u64);

struct FileSource {
    path: PathBuf,
    /// The file's stamp when last read, and its content then.
    cache: Mutex<Option<(Stamp, Secret)>>,
    generation: AtomicU64,
}

impl FileSource {
    fn read(&self, force: bool) -> Result<Secret, CredentialError> {
        let error = |e: std::io::Error| CredentialError::File { path: self.path.clone(), reason: e.to_string() };
        let meta = std::fs::metadata(&self.path).map_err(error)?;
        let stamp = (meta.modified().ok(), meta.len());
        let mut cache = self.cache.lock();
        if !force
            && let Some((seen, secret)) = cache.as_ref()
            && *seen == stamp
        {
            return Ok(secret.clone());
        }
        let secret = Secret::new(read_secret(&self.path).map_err(error)?);
        if cache.as_ref().is_some_and(|(_, old)| *old != secret) {
            self.generation.fetch_add(1, Ordering::AcqRel);
            tracing::info!(target: "aquifer::credentials", path = %self.path.display(), "password file changed");
        }
        *cache = Some((stamp, secret.clone()));
        Ok(secret)
    }
}

/// The file's content without its trailing line break (what `echo pw > file` and Kubernetes write).
fn read_secret(path: &Path) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    let kept = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(kept);
    Ok(text)
}

struct FnProvider<F> {
    name: String,
    fetch: F,
}

#[crate::async_trait]
impl<F, Fut> CredentialProvider for FnProvider<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Credential, ProviderError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self) -> Result<Credential, ProviderError> {
        (self.fetch)().await
    }
}

#[derive(Default)]
struct ProviderState {
    /// The credential held, and when it stops being valid on Tokio's clock (its `expires_at` turned into a
    /// deadline when it was fetched, so the refresh schedule follows Tokio's clock, paused in tests).
    current: Option<(Credential, Option<tokio::time::Instant>)>,
    last_error: Option<String>,
    refresher: bool,
}

struct ProviderSource {
    provider: Box<dyn CredentialProvider>,
    refresh_ahead: Duration,
    state: Mutex<ProviderState>,
    /// One fetch at a time: callers arriving during a fetch wait for its result instead of fetching again.
    fetching: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

/// The shortest wait between two attempts of a failing refresh, doubled up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

impl ProviderSource {
    fn valid(held: &(Credential, Option<tokio::time::Instant>)) -> bool {
        held.1.is_none_or(|deadline| deadline > tokio::time::Instant::now())
    }

    fn deadline(credential: &Credential) -> Option<tokio::time::Instant> {
        let left = credential.expires_at?.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        Some(tokio::time::Instant::now() + left)
    }

    async fn current(self: &Arc<Self>) -> Result<Secret, CredentialError> {
        if let Some((c, _)) = self.state.lock().current.as_ref().filter(|c| Self::valid(c)) {
            return Ok(c.secret.clone());
        }
        let secret = self.refresh(false).await?;
        self.start_refresher();
        Ok(secret)
    }

    /// Fetches a credential. Callers queue on one fetch at a time; one that finds a valid credential
    /// fetched by another while it waited takes it (`force` asks for a new one unless another caller
    /// already changed it meanwhile).
    async fn refresh(&self, force: bool) -> Result<Secret, CredentialError> {
        let before = self.generation.load(Ordering::Acquire);
        let _one = self.fetching.lock().await;
        let changed_meanwhile = self.generation.load(Ordering::Acquire) != before;
        if (!force || changed_meanwhile)
            && let Some((c, _)) = self.state.lock().current.as_ref().filter(|c| Self::valid(c))
        {
            return Ok(c.secret.clone());
        }
        let name = self.provider.name().to_owned();
        match self.provider.fetch().await {
            Ok(credential) => {
                let secret = credential.secret.clone();
                let mut state = self.state.lock();
                if state.current.as_ref().is_some_and(|(old, _)| old.secret != secret) {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                let deadline = Self::deadline(&credential);
                state.current = Some((credential, deadline));
                state.last_error = None;
                drop(state);
                crate::metrics::credential_refreshed(&name, "success");
                Ok(secret)
            }
            Err(e) => {
                let reason = e.to_string();
                crate::metrics::credential_refreshed(&name, "failure");
                let mut state = self.state.lock();
                state.last_error = Some(reason.clone());
                match state.current.as_ref().filter(|c| Self::valid(c)) {
                    Some((c, _)) => {
                        tracing::warn!(target: "aquifer::credentials", provider = %name, error = %reason,
                            "credential refresh failed; keeping the current credential until it expires");
                        Ok(c.secret.clone())
                    }
                    None => Err(CredentialError::Provider { provider: name, reason }),
                }
            }
        }
    }

    /// Starts the background refresh once (within a Tokio runtime); it ends when the last handle is dropped.
    fn start_refresher(self: &Arc<Self>) {
        {
            let mut state = self.state.lock();
            if state.refresher {
                return;
            }
            state.refresher = true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let weak: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut retry = MIN_RETRY;
            loop {
                let Some(source) = weak.upgrade() else { return };
                let wait = source.until_refresh();
                drop(source);
                let Some(wait) = wait else { return };
                tokio::time::sleep(wait).await;
                let Some(source) = weak.upgrade() else { return };
                let failed = source.refresh(true).await.is_err() || source.state.lock().last_error.is_some();
                drop(source);
                if failed {
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                } else {
                    retry = MIN_RETRY;
                }
            }
        });
    }

    /// How long until the held credential is due for a refresh; `None` when it never expires.
    fn until_refresh(&self) -> Option<Duration> {
        let state = self.state.lock();
        let deadline = state.current.as_ref()?.1?;
        let due = deadline.checked_sub(self.refresh_ahead).unwrap_or(deadline);
        Some(due.saturating_duration_since(tokio::time::Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_shown() {
        let s = Secret::new("hunter2");
        assert_eq!((format!("{s}"), format!("{s:?}")), ("***".to_owned(), "Secret(***)".to_owned()));
    }

    #[test]
    fn a_password_file_is_reread_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("aq_cred_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("password");
        std::fs::write(&path, "first\n").unwrap();
        let file = FileSource { path: path.clone(), cache: Mutex::new(None), generation: AtomicU64::new(0) };
        assert_eq!(file.read(false).unwrap().expose(), "first");
        // A longer content changes the size even within the file system's timestamp granularity.
        std::fs::write(&path, "second-one\n").unwrap();
        assert_eq!(file.read(false).unwrap().expose(), "second-one");
        assert_eq!(file.generation.load(Ordering::Acquire), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_password_file_names_the_path_not_a_secret() {
        let e = Credentials::file("/nonexistent/aquifer/pw");
        let Source::File(file) = &e.source else { unreachable!() };
        let err = file.read(false).unwrap_err();
        assert!(err.to_string().starts_with("cannot read the password file /nonexistent/aquifer/pw: "), "{err}");
    }
}

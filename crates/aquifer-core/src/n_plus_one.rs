//! Finding N+1 loops: the same statement shape run again and again, one call after another, from one call site
//! within one scope (a request).
//!
//! A service opens a scope per unit of work ([`scope`], or aquifer-http's per-request layer); every statement
//! that goes through a pool's helpers (the operation runner) or, for PostgreSQL, its sqlx executor is noted
//! with its *shape* (the statement with its literals and parameters replaced, see [`shape`]) and its caller's
//! `file:line`. When the scope ends, each (shape, call site) run at least `threshold` times (default
//! [`DEFAULT_THRESHOLD`]) one after another is reported once: a `tracing` warning (target
//! `aquifer::n_plus_one`) and the counter `aquifer.n_plus_one`. In [`NPlusOneMode::Deny`] the call that
//! reaches the threshold also fails, with [`NPlusOneError`].
//!
//! Not counted: writes (only statements that read are, see [`Shape::read`]); statements with a list (`IN`,
//! `ANY`, `UNNEST`, `UNWIND`, `json_each`), which are batched by construction; calls that overlap another call
//! of the same shape and site (concurrent, not one after another); statements outside any scope; statements
//! run on a checked-out connection through the driver (`&mut *conn`), which the pool does not see.

use std::borrow::Cow;
use std::collections::hash_map::Entry as Slot;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

/// How many times one shape may run from one call site, one call after another, before it is an N+1 loop.
pub const DEFAULT_THRESHOLD: u32 = 5;

/// The most distinct (shape, call site) pairs one scope tracks; further ones are not tracked, so a scope that
/// runs a great many different statements stays bounded in memory.
const MAX_TRACKED: usize = 1024;

/// What a pool does with the N+1 loops it sees inside a scope. Set with
/// [`Pool::set_n_plus_one`](crate::Pool::set_n_plus_one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NPlusOneMode {
    /// Not looked for: the helpers read one atomic and skip the scope altogether.
    Off,
    /// Reported when the scope ends: a `tracing` warning and the counter `aquifer.n_plus_one`.
    #[default]
    Warn,
    /// Reported, and the call that reaches the threshold fails with [`NPlusOneError`] (for test suites).
    Deny,
}

impl NPlusOneMode {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            NPlusOneMode::Off => 0,
            NPlusOneMode::Warn => 1,
            NPlusOneMode::Deny => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => NPlusOneMode::Off,
            2 => NPlusOneMode::Deny,
            _ => NPlusOneMode::Warn,
        }
    }
}

impl std::str::FromStr for NPlusOneMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(NPlusOneMode::Off),
            "warn" => Ok(NPlusOneMode::Warn),
            "deny" => Ok(NPlusOneMode::Deny),
            _ => Err(format!("n_plus_one mode {s:?}: expected off, warn or deny")),
        }
    }
}

/// The pool's mode, read on every helper call before anything else.
#[derive(Debug)]
pub(crate) struct ModeCell(AtomicU8);

impl Default for ModeCell {
    fn default() -> Self {
        ModeCell(AtomicU8::new(NPlusOneMode::default().to_u8()))
    }
}

impl ModeCell {
    #[inline]
    pub(crate) fn get(&self) -> NPlusOneMode {
        NPlusOneMode::from_u8(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, mode: NPlusOneMode) {
        self.0.store(mode.to_u8(), Ordering::Relaxed);
    }
}

/// One N+1 loop: a shape run `count` times one after another from one call site in one scope.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Finding {
    /// The pool's name.
    pub pool: String,
    /// `db.system.name` of the pool.
    pub system: String,
    /// The statement with its literals and parameters replaced by `?` ([`shape`]).
    pub shape: String,
    /// The file of the call site: where the helper was called, or for a call through a driver's API (sqlx's
    /// `query(..).fetch_all(&pool)`) the first frame of a backtrace outside the driver and Aquifer
    /// (`unknown` when the binary has no line tables).
    pub file: String,
    /// The line of the call site (0 when unknown).
    pub line: u32,
    /// How many times it ran one after another in the scope (up to the failing call, in deny mode).
    pub count: u32,
    /// Their time in all, from each call to its result (connection checkout included).
    pub total: Duration,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "N+1 loop at {}:{}: `{}` ran {} times one after another on pool {} ({:.1?} in all); batch it \
             (a BatchLoader, one query with IN/ANY/UNWIND)",
            self.file, self.line, self.shape, self.count, self.pool, self.total
        )
    }
}

/// A call failed by [`NPlusOneMode::Deny`]: it would have been the `threshold`-th run of its shape from its
/// call site in the scope. Nothing was sent to the server.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{finding}")]
#[non_exhaustive]
pub struct NPlusOneError {
    /// The loop, as far as it got.
    pub finding: Finding,
}

/// Where the pool records a finding: the pool's counter and attributes.
#[derive(Clone)]
pub(crate) struct Sink {
    pub(crate) pool: Arc<str>,
    pub(crate) system: Cow<'static, str>,
    pub(crate) counter: Counter<u64>,
    pub(crate) base: Arc<[KeyValue]>,
}

impl Sink {
    fn report(&self, finding: &Finding) {
        tracing::warn!(
            target: "aquifer::n_plus_one",
            pool = %finding.pool,
            db.system.name = %finding.system,
            shape = %finding.shape,
            count = finding.count,
            total_ms = finding.total.as_secs_f64() * 1e3,
            code.location = %format_args!("{}:{}", finding.file, finding.line),
            "{finding}"
        );
        let mut attrs = Vec::with_capacity(self.base.len() + 2);
        attrs.extend_from_slice(&self.base);
        attrs.push(KeyValue::new("code.file.path", finding.file.clone()));
        attrs.push(KeyValue::new("code.line.number", i64::from(finding.line)));
        self.counter.add(1, &attrs);
    }
}

struct Entry {
    /// The shape's text and where to report: set by the call that reaches the threshold, so shapes that never
    /// loop cost no shared counter clone and no text.
    shape: Option<Arc<str>>,
    /// The call site, when the helper knew it; else resolved from a backtrace once the loop is found.
    caller: Option<&'static Location<'static>>,
    resolved: Option<(String, u32)>,
    count: u32,
    in_flight: u32,
    total: Duration,
    sink: Option<Sink>,
}

impl Entry {
    fn finding(&self) -> Finding {
        let (file, line) = match (self.caller, &self.resolved) {
            (Some(c), _) => (c.file().to_owned(), c.line()),
            (None, Some((file, line))) => (file.clone(), *line),
            (None, None) => ("unknown".to_owned(), 0),
        };
        Finding {
            pool: self.sink.as_ref().map_or_else(String::new, |s| s.pool.to_string()),
            system: self.sink.as_ref().map_or_else(String::new, |s| s.system.to_string()),
            shape: self.shape.as_deref().unwrap_or_default().to_owned(),
            file,
            line,
            count: self.count,
            total: self.total,
        }
    }
}

/// What one scope has seen.
struct State {
    threshold: u32,
    entries: foldhash::HashMap<Key, Entry>,
    reported: bool,
}

impl State {
    /// The loops found, each once; later calls report nothing more.
    fn take_findings(&mut self) -> Vec<(Finding, Sink)> {
        if std::mem::replace(&mut self.reported, true) {
            return Vec::new();
        }
        let mut found: Vec<_> = self
            .entries
            .values()
            .filter(|e| e.count >= self.threshold)
            .filter_map(|e| Some((e.finding(), e.sink.clone()?)))
            .collect();
        found.sort_by(|(a, _), (b, _)| (&a.file, a.line).cmp(&(&b.file, b.line)));
        found
    }
}

type Shared = Arc<parking_lot::Mutex<State>>;

/// A shape's hash and its call site (`None`: a call through a driver's API, keyed by shape alone). The hash
/// rather than the text, so a call allocates no key; the text is kept in the entry.
type Key = (u64, Option<Site>);

/// A call site as a map key: hashed by line and column only (std's `Location` hashes its file name, which
/// cost more than the rest of a watch), compared in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Site(&'static Location<'static>);

impl Hash for Site {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0.line()) << 32 | u64::from(self.0.column()));
    }
}

tokio::task_local! {
    static SCOPE: Shared;
}

/// Reports the scope's findings when the scope ends, also when its future is dropped before completing.
struct ReportOnDrop(Shared);

impl ReportOnDrop {
    fn report(&self) -> Vec<Finding> {
        let found = self.0.lock().take_findings();
        found
            .into_iter()
            .map(|(finding, sink)| {
                sink.report(&finding);
                finding
            })
            .collect()
    }
}

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        self.report();
    }
}

/// A scope to look for N+1 loops in, with its settings. [`scope`] opens one with the defaults.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Scope {
    threshold: u32,
}

impl Default for Scope {
    fn default() -> Self {
        Scope { threshold: DEFAULT_THRESHOLD }
    }
}

impl Scope {
    /// A scope with the default threshold ([`DEFAULT_THRESHOLD`]).
    pub fn new() -> Self {
        Scope::default()
    }

    /// Runs of one shape from one call site, one after another, that make an N+1 loop. Default:
    /// [`DEFAULT_THRESHOLD`] (5). Values below 2 are taken as 2 (one run is not a loop).
    pub fn threshold(mut self, threshold: u32) -> Self {
        self.threshold = threshold.max(2);
        self
    }

    /// Runs `fut` inside the scope; the loops found are reported when it completes (or is dropped).
    ///
    /// Tasks `fut` spawns are outside the scope (a task-local does not follow `tokio::spawn`): open a scope
    /// inside them too.
    ///
    /// Cancel safety: dropping the future drops `fut` and reports what was found so far.
    pub fn run<F: Future>(self, fut: F) -> ScopeFuture<F> {
        // A future of its own rather than an `async fn`: each `async` layer would move `fut` (a request
        // handler's future, often kilobytes) once more; measured as the largest part of a scope's cost.
        let state = self.state();
        ScopeFuture { guard: ReportOnDrop(Arc::clone(&state)), inner: SCOPE.scope(state, fut) }
    }

    fn state(self) -> Shared {
        Arc::new(parking_lot::Mutex::new(State {
            threshold: self.threshold,
            entries: foldhash::HashMap::default(),
            reported: false,
        }))
    }

    /// Like [`run`](Scope::run), and also returns the loops found (each also reported as usual).
    ///
    /// Cancel safety: as for [`run`](Scope::run).
    pub async fn run_and_report<F: Future>(self, fut: F) -> (F::Output, Vec<Finding>) {
        let state = self.state();
        let guard = ReportOnDrop(Arc::clone(&state));
        let out = SCOPE.scope(state, fut).await;
        let found = guard.report();
        (out, found)
    }
}

/// Runs `fut` inside an N+1 scope with the default threshold: see the [module](self) and [`Scope::run`].
///
/// Cancel safety: as for [`Scope::run`].
pub fn scope<F: Future>(fut: F) -> ScopeFuture<F> {
    Scope::new().run(fut)
}

pin_project_lite::pin_project! {
    /// A future running inside an N+1 scope ([`scope`], [`Scope::run`]): its output is the inner future's;
    /// the loops found are reported when it completes or is dropped.
    #[must_use = "futures do nothing unless polled"]
    pub struct ScopeFuture<F: Future> {
        #[pin]
        inner: tokio::task::futures::TaskLocalFuture<Shared, F>,
        guard: ReportOnDrop,
    }
}

impl<F: Future> Future for ScopeFuture<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        this.guard.report();
        std::task::Poll::Ready(out)
    }
}

impl<F: Future> fmt::Debug for ScopeFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeFuture").finish_non_exhaustive()
    }
}

/// Whether the current task is inside an N+1 scope.
pub fn in_scope() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// One call being watched; finishing it (or dropping it) adds its time to its shape's total.
#[must_use = "a Watch records the call's time when it is finished or dropped"]
pub struct Watch {
    state: Shared,
    key: Key,
    started: Instant,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch").field("shape_hash", &self.key.0).field("caller", &self.key.1.map(|s| s.0)).finish()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let mut state = self.state.lock();
        if let Some(e) = state.entries.get_mut(&self.key) {
            e.in_flight = e.in_flight.saturating_sub(1);
            e.total += elapsed;
        }
    }
}

/// Notes a call of `statement` from `caller` in the current scope, if any. `Ok(None)` outside a scope or for a
/// batched statement; an error when `mode` is deny and this call reaches the threshold.
pub(crate) fn watch(
    mode: NPlusOneMode,
    statement: &str,
    caller: Option<&'static Location<'static>>,
    sink: impl FnOnce() -> Sink,
) -> Result<Option<Watch>, NPlusOneError> {
    let Ok(state) = SCOPE.try_with(Arc::clone) else {
        return Ok(None);
    };
    let Some(hash) = counted_shape(statement) else {
        return Ok(None);
    };
    let key = (hash, caller.map(Site));
    let mut guard = state.lock();
    let threshold = guard.threshold;
    let tracked = guard.entries.len();
    let entry = match guard.entries.entry(key) {
        Slot::Occupied(slot) => slot.into_mut(),
        Slot::Vacant(_) if tracked >= MAX_TRACKED => return Ok(None),
        Slot::Vacant(slot) => slot.insert(Entry {
            shape: None,
            caller,
            resolved: None,
            count: 0,
            in_flight: 0,
            total: Duration::ZERO,
            sink: None,
        }),
    };
    // A call that overlaps another of the same shape and site is concurrent, not one after another.
    if entry.in_flight == 0 {
        entry.count += 1;
        if entry.count == threshold {
            entry.shape = Some(shape_text(statement));
            entry.sink = Some(sink());
            // This call is inside the loop: its backtrace leads to the loop's call site (once per loop).
            if entry.caller.is_none() {
                entry.resolved = call_site_from_backtrace();
            }
        }
    }
    if mode == NPlusOneMode::Deny && entry.count >= threshold {
        return Err(NPlusOneError { finding: entry.finding() });
    }
    entry.in_flight += 1;
    drop(guard);
    Ok(Some(Watch { state, key, started: Instant::now() }))
}

/// Statements whose shape is known, by their text: an application runs the same few hundred statement texts
/// again and again, and normalising one costs far more than finding it here (measured with callgrind: the
/// shape was about 60 % of a watch's instructions). The value is the hash of the shape's text (the entries'
/// key), `None` for a batched or writing statement, never counted. One cache per thread, so a lookup takes no
/// lock and writes no memory another core reads.
type ShapeCache = foldhash::HashMap<Box<str>, Option<u64>>;

/// Distinct statement texts kept per thread; texts with literals spliced in (each one new) stop being added
/// once it is full, and are normalised per call.
const MAX_CACHED_SHAPES: usize = 4096;

thread_local! {
    static SHAPES: std::cell::RefCell<ShapeCache> = std::cell::RefCell::default();
}

/// The hash of `statement`'s shape if it is counted, from this thread's cache or normalised now.
fn counted_shape(statement: &str) -> Option<u64> {
    if let Some(known) = SHAPES.with_borrow(|cache| cache.get(statement).copied()) {
        return known;
    }
    let shape = shape(statement);
    let counted = (!shape.batched && shape.read).then(|| shape_hash(&shape.text));
    SHAPES.with_borrow_mut(|cache| {
        if cache.len() < MAX_CACHED_SHAPES {
            cache.insert(statement.into(), counted);
        }
    });
    counted
}

fn shape_hash(text: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0).hash_one(text)
}

/// The shape's text, for a finding: normalised again, once per loop found.
fn shape_text(statement: &str) -> Arc<str> {
    shape(statement).text.into()
}

/// The first frame of the current backtrace outside the standard library, the dependencies (`.cargo`) and the
/// pool's own crates: the code that called the driver. `None` without line tables.
fn call_site_from_backtrace() -> Option<(String, u32)> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    trace.lines().filter_map(|l| l.trim().strip_prefix("at ")).find_map(|at| {
        let inside = ["/rustc/", "/.cargo/", "/.rustup/", "aquifer-core/src/", "aquifer-postgres/src/", "library/"];
        if inside.iter().any(|p| at.contains(p)) {
            return None;
        }
        // `path:line:column`
        let (rest, _column) = at.rsplit_once(':')?;
        let (file, line) = rest.rsplit_once(':')?;
        Some((file.trim_start_matches("./").to_owned(), line.parse().ok()?))
    })
}

/// A statement's shape: its text with literals and parameters replaced, and whether it is batched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shape {
    /// The statement with string and number literals and parameters (`$1`, `?`, `?1`, `:name`, `@name`,
    /// Cypher's `$name`) replaced by `?`, lists of them (`?, ?, ?`) by one `?`, and whitespace runs by one
    /// space.
    pub text: String,
    /// The statement works on a list: it has a word `IN`, `ANY`, `UNNEST`, `UNWIND` or `json_each`
    /// (case-insensitive, outside literals). Such statements are never counted.
    pub batched: bool,
    /// The statement only reads: it starts with a reading word (`SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`;
    /// Cypher's `MATCH`, `OPTIONAL`, `RETURN`) and has no writing word (`INSERT`, `UPDATE`, `DELETE`, `MERGE`,
    /// `CREATE`, `SET`, `REMOVE`, `DETACH`, `DROP`, `ALTER`, `TRUNCATE`) outside literals. Only reads are
    /// counted: an N+1 loop loads, and a loop of single-row writes is the bulk helpers' business.
    pub read: bool,
}

/// Words that make a statement a batched one (compared case-insensitively).
const LIST_WORDS: &[&str] = &["IN", "ANY", "UNNEST", "UNWIND", "JSON_EACH"];

/// First words of a statement that reads.
const READ_WORDS: &[&str] = &["SELECT", "WITH", "VALUES", "TABLE", "SHOW", "MATCH", "OPTIONAL", "RETURN"];

/// Words that make a statement a write, wherever they are.
const WRITE_WORDS: &[&str] =
    &["INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "SET", "REMOVE", "DETACH", "DROP", "ALTER", "TRUNCATE"];

/// The [`Shape`] of an SQL or Cypher statement.
///
/// Hand-written rather than a parser crate: it runs on every watched call, so it must be a single pass with one
/// allocation, and it must never fail, whatever the dialect (PostgreSQL, MySQL, SQLite, Cypher); a full SQL
/// parser allocates a syntax tree, knows no Cypher and rejects what its grammar lacks.
pub fn shape(statement: &str) -> Shape {
    let bytes = statement.as_bytes();
    let mut out = String::with_capacity(statement.len());
    let mut batched = false;
    let mut first_word = true;
    let mut read = false;
    let mut writes = false;
    let mut i = 0;
    // Emits one placeholder, folding a list of placeholders (`?, ?, ?`) into one.
    fn placeholder(out: &mut String) {
        let trimmed = out.trim_end();
        if let Some(before) = trimmed.strip_suffix(',')
            && before.trim_end().ends_with('?')
        {
            let keep = before.trim_end().len();
            out.truncate(keep);
            return;
        }
        out.push('?');
    }
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                // A string literal (or a quoted name, which stays the same from one call to the next).
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b {
                        if bytes.get(i + 1) == Some(&b) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                placeholder(&mut out);
            }
            b'0'..=b'9' if i == 0 || !ident(bytes[i - 1]) => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                placeholder(&mut out);
            }
            b'?' => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                placeholder(&mut out);
            }
            b'$' | b'@' if bytes.get(i + 1).is_some_and(|&n| ident(n)) => {
                i += 1;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                placeholder(&mut out);
            }
            b':' if bytes.get(i + 1).is_some_and(|&n| n.is_ascii_alphabetic() || n == b'_')
                && (i == 0 || bytes[i - 1] != b':') =>
            {
                i += 1;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                placeholder(&mut out);
            }
            b if b.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            b if ident(b) => {
                let start = i;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                let word = &statement[start..i];
                batched |= LIST_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word));
                writes |= WRITE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word));
                if std::mem::take(&mut first_word) {
                    read = READ_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word));
                }
                out.push_str(word);
            }
            _ => {
                // Any other character, whole (a UTF-8 sequence is copied as it is).
                let len = statement[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&statement[i..i + len]);
                i += len;
            }
        }
    }
    let keep = out.trim_end().len();
    out.truncate(keep);
    Shape { text: out, batched, read: read && !writes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_parameters_become_one_placeholder() {
        let a = shape("SELECT title FROM t WHERE album = 'Volume 1' AND year > 1999");
        let b = shape("SELECT  title FROM t\n WHERE album = 'It''s' AND year > 2024");
        assert_eq!(a, b);
        assert_eq!(a.text, "SELECT title FROM t WHERE album = ? AND year > ?");
        assert_eq!(shape("SELECT $1::int8").text, "SELECT ?::int8");
        assert_eq!(
            shape("SELECT * FROM t WHERE a = ?1 AND b = :name AND c = @v").text,
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?"
        );
        assert_eq!(shape("MATCH (a {id: $id}) RETURN a.t2 AS t").text, "MATCH (a {id: ?}) RETURN a.t2 AS t");
    }

    #[test]
    fn parameter_lists_fold_into_one() {
        assert_eq!(
            shape("INSERT INTO t (a, b) VALUES (?, ?, ?)").text,
            shape("INSERT INTO t (a, b) VALUES ($1, 2)").text
        );
    }

    #[test]
    fn list_statements_are_batched() {
        assert!(shape("SELECT * FROM t WHERE id IN (1, 2)").batched);
        assert!(shape("SELECT * FROM t WHERE id = any($1)").batched);
        assert!(shape("UNWIND $rows AS r MERGE (:A {id: r.id})").batched);
        assert!(shape("SELECT * FROM t, json_each(?1) j WHERE t.id = j.value").batched);
        assert!(!shape("SELECT 'in' FROM t WHERE name = 'ANY'").batched);
        assert!(!shape("SELECT * FROM tin WHERE inside = 1").batched);
    }

    #[test]
    fn only_reads_are_reads() {
        assert!(shape("SELECT title FROM t WHERE id = $1").read);
        assert!(shape("with x as (select 1) select * from x").read);
        assert!(shape("MATCH (a:A {id: $id}) RETURN a").read);
        assert!(!shape("INSERT INTO t (a) VALUES ($1)").read);
        assert!(!shape("UPDATE t SET a = 1 WHERE id = 2").read);
        assert!(!shape("WITH x AS (DELETE FROM t RETURNING id) SELECT * FROM x").read);
        assert!(!shape("MATCH (n:A) WITH n LIMIT 10 DETACH DELETE n RETURN count(*)").read);
        assert!(!shape("MERGE (:A {id: $id})").read);
        assert!(shape("SELECT 'delete me' FROM t").read);
    }

    #[test]
    fn shape_never_panics_on_odd_text() {
        for s in ["", "'", "\"unterminated", "$", "?", ":", "é 'ü' 1", "a\\'b'", "::x", "12abc", "@"] {
            let _ = shape(s);
        }
    }
}

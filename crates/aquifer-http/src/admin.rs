//! The operator's routes: pause, resume, retire and resize a pool over HTTP, behind a bearer token.
//!
//! Off unless the service mounts [`admin_router`], and never part of [`router`](crate::router): the health
//! routes are safe to expose to a load balancer, these change what the service does.

use std::fmt;

use aquifer_core::AnyPool;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Pools;

/// The shortest token [`AdminToken::new`] accepts, in bytes: 128 bits of a random hex or base64 string,
/// too many to guess over HTTP.
pub const MIN_TOKEN_LEN: usize = 32;

/// The bearer token the admin routes require. Its `Debug` shows nothing of it, and it is compared in constant
/// time (the SHA-256 digests of both sides, so neither the content nor the length of the expected token leaks
/// through timing).
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    /// A token from the service's configuration (a secret file, an environment variable). Surrounding white
    /// space is trimmed (a file written by `echo` ends in a newline).
    ///
    /// # Errors
    ///
    /// [`AdminTokenError`] when the token is shorter than [`MIN_TOKEN_LEN`] bytes (empty included) or holds a
    /// character that cannot appear in an `Authorization` header.
    pub fn new(token: impl AsRef<str>) -> Result<Self, AdminTokenError> {
        let token = token.as_ref().trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort { len: token.len() });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotPrintable);
        }
        Ok(AdminToken { digest: Sha256::digest(token.as_bytes()).into() })
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&presented).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why [`AdminToken::new`] refused a token (the error never holds the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// Fewer than [`MIN_TOKEN_LEN`] bytes after trimming.
    #[error("admin token: {len} bytes, at least {MIN_TOKEN_LEN} are required (e.g. `openssl rand -hex 32`)")]
    TooShort {
        /// The length of the token given, after trimming.
        len: usize,
    },
    /// A byte outside printable ASCII (a header value could not carry it).
    #[error("admin token: only printable ASCII without spaces can be sent in an Authorization header")]
    NotPrintable,
}

/// The operator's routes over `pools`, each requiring `Authorization: Bearer <token>`:
///
/// - `POST /pools/{pool}/pause`: the pool lends and opens nothing; callers wait up to their acquire timeout
///   (HikariCP's `suspendPool`, PgBouncer's `PAUSE`);
/// - `POST /pools/{pool}/resume`;
/// - `POST /pools/{pool}/retire`: idle connections closed now, lent ones as they return (after a failover or
///   a DNS change);
/// - `PUT /pools/{pool}/size` with `{"max_size": n}`.
///
/// Answers: `200` with the pool's name, the action and its `paused` state (and `closed_now` for retire,
/// `max_size` for size); `401` without a bearer token; `403` with a wrong one; `404` for an unknown pool;
/// `400` for a size the pool refuses, naming `max_size`. Pool names may contain `/`. Every action, and every
/// refused attempt, is logged (`aquifer::admin`) with the pool's name, never the token.
///
/// Mount it on a listener only operators reach, or nest it under a prefix:
///
/// ```no_run
/// use aquifer_http::{AdminToken, Pools, admin_router, router};
///
/// # fn service(pools: Pools) -> Result<axum::Router, Box<dyn std::error::Error>> {
/// let token = AdminToken::new(std::fs::read_to_string("/run/secrets/aquifer-admin-token")?)?;
/// let app = axum::Router::new().merge(router(pools.clone())).nest("/admin", admin_router(pools, token));
/// # Ok(app)
/// # }
/// ```
pub fn admin_router(pools: Pools, token: AdminToken) -> Router {
    Router::new()
        .route("/pools/{*path}", post(act).put(size))
        .layer(middleware::from_fn_with_state(token, authorize))
        .with_state(pools)
}

async fn authorize(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    let target = format!("{} {}", request.method(), request.uri().path());
    match bearer(request.headers()) {
        None => {
            tracing::warn!(target: "aquifer::admin", %target, "admin request without a bearer token refused");
            let mut response =
                error(StatusCode::UNAUTHORIZED, "an Authorization: Bearer token is required").into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Some(presented) if !token.matches(presented) => {
            tracing::warn!(target: "aquifer::admin", %target, "admin request with a wrong bearer token refused");
            error(StatusCode::FORBIDDEN, "the bearer token is not the admin token").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive, RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

/// A refused request: its status and JSON body.
struct Refused(StatusCode, serde_json::Value);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Refused {
    Refused(status, serde_json::json!({ "error": message.into() }))
}

/// Splits `{pool}/{action}` at the last `/` (pool names may hold `/`) and finds the pool.
fn find(pools: &Pools, path: &str) -> Result<(std::sync::Arc<dyn AnyPool>, String), Refused> {
    let Some((name, action)) = path.rsplit_once('/') else {
        return Err(error(StatusCode::NOT_FOUND, format!("no action in {path:?}: use /pools/{{pool}}/{{action}}")));
    };
    match pools.find(name) {
        Some(pool) => Ok((pool, action.to_owned())),
        None => Err(Refused(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": format!("no pool named {name:?}"), "pools": pools.names() }),
        )),
    }
}

async fn act(State(pools): State<Pools>, Path(path): Path<String>) -> Result<Json<serde_json::Value>, Refused> {
    let (pool, action) = find(&pools, &path)?;
    let name = pool.name().to_owned();
    let mut body = serde_json::json!({ "pool": name, "action": action });
    match action.as_str() {
        "pause" => pool.pause(),
        "resume" => pool.resume(),
        "retire" => body["closed_now"] = pool.retire().into(),
        _ => {
            let message = format!("unknown action {action:?}: POST pause, resume or retire; PUT size");
            return Err(error(StatusCode::NOT_FOUND, message));
        }
    }
    body["paused"] = pool.is_paused().into();
    tracing::info!(target: "aquifer::admin", pool = %name, %action, "admin action");
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Size {
    max_size: usize,
}

async fn size(
    State(pools): State<Pools>,
    Path(path): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, Refused> {
    let (pool, action) = find(&pools, &path)?;
    if action != "size" {
        return Err(error(StatusCode::NOT_FOUND, format!("unknown action {action:?}: PUT size")));
    }
    let Size { max_size } = serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("expected {{\"max_size\": n}}: {e}")))?;
    let name = pool.name().to_owned();
    if let Err(e) = pool.resize(max_size) {
        tracing::warn!(target: "aquifer::admin", pool = %name, max_size, error = %e, "admin resize refused");
        return Err(error(StatusCode::BAD_REQUEST, e.to_string()));
    }
    tracing::info!(target: "aquifer::admin", pool = %name, action = "size", max_size, "admin action");
    Ok(Json(serde_json::json!({ "pool": name, "action": "size", "max_size": max_size, "paused": pool.is_paused() })))
}

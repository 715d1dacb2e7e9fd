//! Routes and request handlers of the console's HTTP API.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use super::events::ConsoleEvent;
use super::leases::NextQuery;
use super::{Shared, assets, auth, events, lock, status};
use crate::answer::Answer;
use crate::media::{MediaBytes, MediaError};
use crate::msg::{PreferenceAnswer, Time};
use crate::node::{AnswerSource, Rejection};
use crate::store::{EpisodeId, Query, SegmentRef, StoreError, unix_secs_now};

/// Maximum length of an operator name, in characters.
pub const MAX_OPERATOR_LENGTH: usize = 40;

/// Maximum number of steps that one segment request may read.
const MAX_SEGMENT_STEPS: usize = 10_000;

/// Content-Security-Policy of every response: scripts, styles and connections from this
/// origin only, no inline code, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An error response: HTTP status, a short kind and a message, sent as
/// `{"error": kind, "message": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn store(error: &StoreError) -> Self {
        warn!(%error, "the operator console failed to read the store");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_failed",
            error.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.kind, "message": self.message }));
        (self.status, body).into_response()
    }
}

impl From<auth::Denied> for ApiError {
    fn from(denied: auth::Denied) -> Self {
        Self::new(denied.status, "unauthorized", denied.message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(rejection.status(), "invalid", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", rejection.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

/// Runs store work on a blocking thread.
async fn blocking<T, F>(shared: &Arc<Shared>, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&Shared) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || work(&shared))
        .await
        .map_err(|error| {
            warn!(%error, "an operator console request panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed inside the node; see the node's log",
            )
        })?
}

/// Returns the router of the console.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/console.js", get(assets::script))
        .route("/console.css", get(assets::style))
        .route("/api/session", get(session))
        .route("/api/login", post(login))
        .route("/api/next", post(next))
        .route("/api/answer", post(answer))
        .route("/api/undo", post(undo))
        .route("/api/status", get(status_document))
        .route("/api/events", get(events::stream))
        .route(
            "/api/segments/{episode_id}/{start}/{length}/steps",
            get(segment_steps),
        )
        .route(
            "/api/segments/{episode_id}/{start}/{length}/media",
            get(segment_media),
        )
        .route(
            "/api/segments/{episode_id}/{start}/{length}/clip",
            get(segment_clip),
        )
        .route("/api/frames/{episode_id}/{step}", get(step_frame))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            reject_foreign_requests,
        ))
        .layer(middleware::map_response(security_headers))
        .with_state(shared)
}

/// Rejects requests that a web page of another site could make through the operator's
/// browser. On a loopback bind the `Host` header must name a loopback address, which
/// stops DNS rebinding. On any bind, a state-changing request with an `Origin` header must
/// come from the console's own origin.
async fn reject_foreign_requests(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if shared.settings.is_loopback() && !is_loopback_host(host) {
        warn!(
            host,
            "operator console request with a foreign Host header rejected"
        );
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "foreign_host",
            format!(
                "Host {host:?} is not a loopback address: open the console through \
                 127.0.0.1 or localhost"
            ),
        )
        .into_response();
    }
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes_state && let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or_default();
        if authority.is_empty() || !authority.eq_ignore_ascii_case(host) {
            warn!(
                origin,
                host, "operator console request from another origin rejected"
            );
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_origin",
                format!("requests from origin {origin:?} are rejected: use the console's own page"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Returns whether the host part of a `Host` header value names this machine: `localhost`
/// or a loopback IP address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Adds the security headers to every response.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such page or API route",
    )
}

/// Checks an operator name: 1 to [`MAX_OPERATOR_LENGTH`] characters of ASCII letters,
/// digits, space, `_`, `-`, `.` and `@`, not starting or ending with a space. The error
/// names the value (cut to 60 characters) and what is expected.
pub fn check_operator(operator: &str) -> Result<(), String> {
    let length = operator.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || " _-.@".contains(c);
    let valid = (1..=MAX_OPERATOR_LENGTH).contains(&length)
        && operator.chars().all(allowed)
        && !operator.starts_with(' ')
        && !operator.ends_with(' ');
    if valid {
        return Ok(());
    }
    let shown: String = operator.chars().take(60).collect();
    Err(format!(
        "invalid operator name {shown:?} ({length} characters): expected 1 to \
         {MAX_OPERATOR_LENGTH} characters of letters, digits, space, '_', '-', '.' or '@', \
         without leading or trailing spaces"
    ))
}

fn operator_checked(operator: &str) -> Result<(), ApiError> {
    check_operator(operator).map_err(ApiError::invalid)
}

/// Returns the JSON form of a segment.
fn segment_json(segment: &SegmentRef) -> Value {
    json!({
        "episode_id": segment.episode.get(),
        "start": segment.start,
        "length": segment.length,
    })
}

/// Returns the JSON form of a query.
fn query_json(query: &Query) -> Value {
    json!({
        "id": query.id.get(),
        "left": segment_json(&query.query.left),
        "right": segment_json(&query.query.right),
        "selector": query.query.selector,
        "created_at_unix_secs": query.query.created_at_unix_secs,
        "expires_at_unix_secs": query.query.expires_at_unix_secs,
    })
}

async fn session(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Json<Value> {
    let token = shared.token.as_deref();
    Json(json!({
        "auth_required": token.is_some(),
        "authenticated": auth::is_authorized(&headers, token),
        "undo_window_secs": shared.settings.undo_window_secs,
        "lease_secs": shared.settings.lease_secs,
        "operator_max_length": MAX_OPERATOR_LENGTH,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    token: String,
}

async fn login(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult {
    let Json(request) = body?;
    let Some(token) = shared.token.as_deref() else {
        return Ok(Json(json!({ "authenticated": true })).into_response());
    };
    if !auth::token_matches(&request.token, token) {
        warn!("operator console login with a wrong access token");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "unauthorized",
            "the access token is wrong",
        ));
    }
    let cookie = HeaderValue::from_str(&auth::login_cookie(token)).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the session cookie could not be built",
        )
    })?;
    let mut response = Json(json!({ "authenticated": true })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorRequest {
    operator: String,
}

async fn next(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<OperatorRequest>, JsonRejection>,
) -> ApiResult {
    auth::authorize(&headers, shared.token.as_deref())?;
    let Json(request) = body?;
    operator_checked(&request.operator)?;
    let document = blocking(&shared, move |shared| {
        let open = lock(&shared.reader)
            .unanswered_queries(unix_secs_now())
            .map_err(|error| ApiError::store(&error))?;
        let next = lock(&shared.leases).next(&request.operator, open, Instant::now());
        Ok(match next {
            NextQuery::Leased(query) => json!({ "query": query_json(&query) }),
            NextQuery::AllLeased { open } => json!({
                "query": null,
                "reason": format!("all {open} open queries are shown to other operators"),
            }),
            NextQuery::NoneOpen => json!({
                "query": null,
                "reason": "no query is open; the node selects a new round when the \
                           dataset has enough segments",
            }),
        })
    })
    .await?;
    Ok(Json(document).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerRequest {
    operator: String,
    query_id: i64,
    answer: String,
    #[serde(default)]
    response_time_sec: f32,
}

/// Returns the HTTP status of a rejected answer.
fn rejection_status(rejection: &Rejection) -> StatusCode {
    match rejection {
        Rejection::InvalidAnswer(_) | Rejection::InvalidResponseTime(_) => StatusCode::BAD_REQUEST,
        Rejection::UnknownQuery(_) => StatusCode::NOT_FOUND,
        Rejection::Expired { .. } => StatusCode::GONE,
        Rejection::Duplicate { .. } => StatusCode::CONFLICT,
        Rejection::StoreFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<AnswerRequest>, JsonRejection>,
) -> ApiResult {
    auth::authorize(&headers, shared.token.as_deref())?;
    let Json(request) = body?;
    operator_checked(&request.operator)?;
    let value: Answer = request
        .answer
        .parse()
        .map_err(|error: crate::answer::ParseAnswerError| ApiError::invalid(error.to_string()))?;
    let document = blocking(&shared, move |shared| {
        let query = crate::store::QueryId(request.query_id);
        if let Some(holder) = lock(&shared.leases).holder(query, Instant::now())
            && holder != request.operator
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "leased",
                format!(
                    "query {} is shown to operator {holder:?}; ask for the next query",
                    request.query_id
                ),
            ));
        }
        let now = unix_secs_now();
        let message = PreferenceAnswer {
            stamp: Time::from_unix_secs(now),
            query_id: request.query_id,
            answer: PreferenceAnswer::code(value),
            operator_id: request.operator.clone(),
            response_time_sec: request.response_time_sec,
        };
        let result = lock(&shared.context.desk).submit(&message, AnswerSource::Console, now);
        match result {
            Ok(id) => {
                lock(&shared.leases).release(id);
                let _ = shared.events.send(ConsoleEvent::new(
                    "answers",
                    json!({
                        "operator": request.operator,
                        "query_id": id.get(),
                        "answer": value.as_str(),
                    }),
                ));
                Ok(json!({ "stored": true, "query_id": id.get(), "answer": value.as_str() }))
            }
            Err(rejection) => Err(ApiError::new(
                rejection_status(&rejection),
                rejection.kind(),
                rejection.to_string(),
            )),
        }
    })
    .await?;
    Ok(Json(document).into_response())
}

async fn undo(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<OperatorRequest>, JsonRejection>,
) -> ApiResult {
    auth::authorize(&headers, shared.token.as_deref())?;
    let Json(request) = body?;
    operator_checked(&request.operator)?;
    let document = blocking(&shared, move |shared| {
        let now = unix_secs_now();
        let window = shared.settings.undo_window_secs;
        let reopen_until = now + shared.settings.lease_secs;
        let undone = lock(&shared.context.desk)
            .undo(&request.operator, window, now, reopen_until)
            .map_err(|error| ApiError::store(&error))?;
        let Some(undone) = undone else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "nothing_to_undo",
                format!(
                    "operator {:?} has no answer from the last {window} s to undo",
                    request.operator
                ),
            ));
        };
        lock(&shared.leases).grant(undone.query, &request.operator, Instant::now());
        let query = lock(&shared.reader)
            .query(undone.query)
            .map_err(|error| ApiError::store(&error))?;
        let _ = shared.events.send(ConsoleEvent::new(
            "answers",
            json!({ "operator": request.operator, "query_id": undone.query.get(), "undone": true }),
        ));
        Ok(json!({
            "undone": { "query_id": undone.query.get(), "answer": undone.answer.as_str() },
            "query": query_json(&query),
        }))
    })
    .await?;
    Ok(Json(document).into_response())
}

async fn status_document(State(shared): State<Arc<Shared>>) -> ApiResult {
    let document = blocking(&shared, |shared| {
        status::status(shared).map_err(|error| ApiError::store(&error))
    })
    .await?;
    Ok(Json(document).into_response())
}

/// Checks a segment path against the store and returns its segment.
fn stored_segment(
    shared: &Shared,
    (episode, start, length): (i64, usize, usize),
) -> Result<(SegmentRef, crate::store::EpisodeRecord), ApiError> {
    if length == 0 || length > MAX_SEGMENT_STEPS {
        return Err(ApiError::invalid(format!(
            "invalid segment length {length}: expected 1 to {MAX_SEGMENT_STEPS} steps"
        )));
    }
    let segment = SegmentRef {
        episode: EpisodeId(episode),
        start,
        length,
    };
    let record = match lock(&shared.reader).episode(segment.episode) {
        Ok(record) => record,
        Err(StoreError::EpisodeNotFound(_)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_episode",
                format!("episode {episode} not found in the segment store"),
            ));
        }
        Err(error) => return Err(ApiError::store(&error)),
    };
    if segment.end().is_none_or(|end| end > record.step_count) {
        return Err(ApiError::invalid(format!(
            "invalid segment {segment}: episode {episode} has {} steps",
            record.step_count
        )));
    }
    Ok((segment, record))
}

/// Returns `names` when it has one name per channel, else `prefix[i]` names.
fn channel_names(names: &[String], count: usize, prefix: &str) -> Vec<String> {
    if names.len() == count {
        names.to_vec()
    } else {
        (0..count)
            .map(|index| format!("{prefix}[{index}]"))
            .collect()
    }
}

async fn segment_steps(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<(i64, usize, usize)>, PathRejection>,
) -> ApiResult {
    let Path(path) = path?;
    let document = blocking(&shared, move |shared| {
        let (segment, _) = stored_segment(shared, path)?;
        let arrays = lock(&shared.reader)
            .episode_arrays(segment.episode)
            .map_err(|error| ApiError::store(&error))?;
        let rows = segment.start..segment.start + segment.length;
        let slice = |array: &ndarray::Array2<f32>| -> Vec<Vec<f32>> {
            array
                .outer_iter()
                .skip(rows.start)
                .take(rows.len())
                .map(|row| row.to_vec())
                .collect()
        };
        let channels = &shared.context.channels;
        Ok(json!({
            "segment": segment_json(&segment),
            "observation_names": channel_names(
                &channels.observation_names, arrays.observations.ncols(), "observation"),
            "action_names": channel_names(
                &channels.action_names, arrays.actions.ncols(), "action"),
            "step_period_secs": channels.step_period_secs,
            "observations": slice(&arrays.observations),
            "actions": slice(&arrays.actions),
        }))
    })
    .await?;
    Ok(Json(document).into_response())
}

/// Returns what a segment can show besides its plots: camera frames, a rendered clip with
/// its state, or `{"kind": "none"}` with the reason. Asking for a clip queues its render.
async fn segment_media(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<(i64, usize, usize)>, PathRejection>,
) -> ApiResult {
    let Path(path) = path?;
    let document = blocking(&shared, move |shared| {
        let (segment, _) = stored_segment(shared, path)?;
        let Some(media) = &shared.context.media else {
            return Ok(json!({ "kind": "none", "reason": "the node serves no media" }));
        };
        let found = media
            .segment_media(segment.episode, segment.start, segment.length)
            .map_err(media_error)?;
        serde_json::to_value(found).map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            )
        })
    })
    .await?;
    Ok(Json(document).into_response())
}

/// Returns the rendered clip of a segment (animated WebP), or 404 while it is not ready.
async fn segment_clip(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<(i64, usize, usize)>, PathRejection>,
) -> ApiResult {
    let Path(path) = path?;
    let bytes = blocking(&shared, move |shared| {
        let (segment, _) = stored_segment(shared, path)?;
        let Some(media) = &shared.context.media else {
            return Ok(None);
        };
        media
            .clip_bytes(segment.episode, segment.start, segment.length)
            .map_err(media_error)
    })
    .await?;
    media_response(bytes, "the clip of this segment is not rendered")
}

/// Returns the camera frame stored with one step, or 404 when the step has none.
async fn step_frame(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<(i64, usize)>, PathRejection>,
) -> ApiResult {
    let Path((episode, step)) = path?;
    let bytes = blocking(&shared, move |shared| {
        let Some(media) = &shared.context.media else {
            return Ok(None);
        };
        media
            .frame_bytes(EpisodeId(episode), step)
            .map_err(media_error)
    })
    .await?;
    media_response(bytes, "this step has no camera frame")
}

fn media_response(bytes: Option<MediaBytes>, missing: &str) -> ApiResult {
    let Some(bytes) = bytes else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no_media", missing));
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(bytes.content_type),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=3600"),
        ),
    ];
    Ok((headers, bytes.data).into_response())
}

fn media_error(error: MediaError) -> ApiError {
    if error.is_invalid_input() {
        return ApiError::new(StatusCode::NOT_FOUND, "no_media", error.to_string());
    }
    warn!(%error, "the operator console failed to read segment media");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "media_failed",
        error.to_string(),
    )
}

//! The operator console's HTTP API against a real store and answer desk: access tokens,
//! answers committed before the response, undo, leases and rejection reasons.
//!
//! The console binds sockets, so run this binary inside `.ci/netns-run`.

mod node_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clarify::console::{Console, ConsoleContext, ConsoleError, ConsoleSettings};
use clarify::deploy::DeploySnapshot;
use clarify::media::{ClipSettings, MediaService};
use clarify::node::{AnswerDesk, AnswerListener, ChannelInfo};
use clarify::store::{CameraFrame, EpisodeId, FrameFormat, QueryId, Store, unix_secs_now};
use node_support::{create_dataset, insert_query};
use serde_json::{Value, json};

const TOKEN: &str = "console-test-token-0123456789";

/// Counts the desk's listener calls, as the model manager would.
#[derive(Default)]
struct CountingListener {
    committed: AtomicU64,
    undone: AtomicU64,
}

impl AnswerListener for CountingListener {
    fn answer_committed(&self) {
        self.committed.fetch_add(1, Ordering::SeqCst);
    }

    fn answer_undone(&self) {
        self.undone.fetch_add(1, Ordering::SeqCst);
    }
}

/// A console on a fixture store with four episodes of 20 steps and `queries` open queries.
struct Fixture {
    _folder: tempfile::TempDir,
    store_path: std::path::PathBuf,
    console: Console,
    listener: Arc<CountingListener>,
    queries: Vec<QueryId>,
    episodes: Vec<EpisodeId>,
}

impl Fixture {
    fn start(settings: ConsoleSettings, queries: usize) -> Result<Self> {
        let folder = tempfile::tempdir()?;
        let store_path = folder.path().join("store.sqlite");
        let mut store = Store::open(&store_path)?;
        let (dataset, episodes) = create_dataset(&mut store, 4, 20);
        let ids = (0..queries)
            .map(|index| {
                let left = episodes[index % 4];
                let right = episodes[(index + 1) % 4];
                insert_query(&mut store, left, right, 0, 10, None)
            })
            .collect();
        // Episode 1 has camera frames at steps 2 and 4; clips are off.
        let frames: Vec<CameraFrame> = [2, 4]
            .into_iter()
            .map(|step| CameraFrame {
                step,
                stamp_unix_secs: 1.0 + step as f64,
                format: FrameFormat::Png,
                width: 1,
                height: 1,
                data: frame_bytes(step),
            })
            .collect();
        store.insert_camera_frames(episodes[1], &frames)?;
        let no_clips = ClipSettings {
            enabled: false,
            ..ClipSettings::default()
        };
        let listener = Arc::new(CountingListener::default());
        let mut desk = AnswerDesk::open(&store_path)?;
        desk.set_listener(Arc::clone(&listener) as Arc<dyn AnswerListener>);
        let context = ConsoleContext {
            desk: Arc::new(Mutex::new(desk)),
            store_path: store_path.clone(),
            models_dir: folder.path().join("models"),
            snapshot: Arc::new(DeploySnapshot::default),
            dataset,
            channels: ChannelInfo {
                observation_names: vec!["x".to_owned(), "y".to_owned(), "z".to_owned()],
                action_names: Vec::new(),
                step_period_secs: 0.1,
            },
            retrain_after_answers: 5,
            media: Some(Arc::new(MediaService::open(&store_path, &no_clips)?)),
        };
        let console = Console::start(&settings, None, context)?;
        Ok(Self {
            _folder: folder,
            store_path,
            console,
            listener,
            queries: ids,
            episodes,
        })
    }

    /// Returns the loopback address with the console's port, which also reaches a console
    /// that listens on the unspecified address.
    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.console.address().port()))
    }

    fn store(&self) -> Result<Store> {
        Ok(Store::open(&self.store_path)?)
    }
}

fn loopback() -> ConsoleSettings {
    ConsoleSettings {
        enabled: true,
        port: 0,
        ..ConsoleSettings::default()
    }
}

/// An HTTP response: status, headers (lower-case names) and body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("JSON body: {}", self.body))
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Response> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        text.push_str(&format!("Host: {address}\r\n"));
    }
    if !body.is_empty() {
        text.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&body);
    stream.write_all(text.as_bytes())?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    // Image bodies are not UTF-8; tests compare them in the same lossy form.
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").context("response head")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .context("status line")?
        .parse()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Returns the stored bytes of the fixture's frame at `step`: a PNG signature and the step.
fn frame_bytes(step: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.push(u8::try_from(step).unwrap_or(u8::MAX));
    bytes
}

fn post(address: SocketAddr, path: &str, body: &Value) -> Result<Response> {
    request(address, "POST", path, &[], Some(body))
}

fn answer_body(operator: &str, query: QueryId, answer: &str) -> Value {
    json!({
        "operator": operator,
        "query_id": query.get(),
        "answer": answer,
        "response_time_sec": 1.5,
    })
}

fn next_query_id(address: SocketAddr, operator: &str) -> Result<Option<i64>> {
    let response = post(address, "/api/next", &json!({ "operator": operator }))?;
    assert_eq!(response.status, 200, "{}", response.body);
    Ok(response.json()?["query"]["id"].as_i64())
}

#[test]
fn off_loopback_without_token_rejected() -> Result<()> {
    let settings = ConsoleSettings {
        bind: "0.0.0.0".to_owned(),
        ..loopback()
    };
    let error = Fixture::start(settings, 1)
        .err()
        .context("the console started without a token")?;
    let error = error
        .downcast::<ConsoleError>()
        .context("a console error")?;
    assert!(matches!(error, ConsoleError::Config(_)), "{error}");
    let message = error.to_string();
    assert!(message.contains("console.token"), "{message}");
    assert!(message.contains("0.0.0.0"), "{message}");
    Ok(())
}

#[test]
fn off_loopback_token_checked() -> Result<()> {
    let settings = ConsoleSettings {
        bind: "0.0.0.0".to_owned(),
        token: TOKEN.to_owned(),
        ..loopback()
    };
    let fixture = Fixture::start(settings, 2)?;
    let address = fixture.address();
    let body = answer_body("alice", fixture.queries[0], "left");

    let missing = request(address, "POST", "/api/answer", &[], Some(&body))?;
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.json()?["error"], "unauthorized");

    let wrong_bearer = "Bearer console-test-token-WRONG";
    let wrong = request(
        address,
        "POST",
        "/api/answer",
        &[("Authorization", wrong_bearer)],
        Some(&body),
    )?;
    assert_eq!(wrong.status, 403, "{}", wrong.body);

    let stale_cookie = "clarify_console_session=0000";
    let wrong = request(
        address,
        "POST",
        "/api/answer",
        &[("Cookie", stale_cookie)],
        Some(&body),
    )?;
    assert_eq!(wrong.status, 403, "{}", wrong.body);

    for (path, body) in [
        ("/api/undo", json!({ "operator": "alice" })),
        ("/api/next", json!({ "operator": "alice" })),
    ] {
        let response = request(address, "POST", path, &[], Some(&body))?;
        assert_eq!(response.status, 401, "{path}: {}", response.body);
    }
    assert!(fixture.store()?.answer(fixture.queries[0])?.is_none());

    let bearer = format!("Bearer {TOKEN}");
    let accepted = request(
        address,
        "POST",
        "/api/answer",
        &[("Authorization", &bearer)],
        Some(&body),
    )?;
    assert_eq!(accepted.status, 200, "{}", accepted.body);

    // Reads stay open.
    let status = request(address, "GET", "/api/status", &[], None)?;
    assert_eq!(status.status, 200, "{}", status.body);
    let session = request(address, "GET", "/api/session", &[], None)?.json()?;
    assert_eq!(session["auth_required"], true);
    assert_eq!(session["authenticated"], false);
    Ok(())
}

#[test]
fn login_cookie_authorizes() -> Result<()> {
    let settings = ConsoleSettings {
        token: TOKEN.to_owned(),
        ..loopback()
    };
    let fixture = Fixture::start(settings, 1)?;
    let address = fixture.address();

    let wrong = post(address, "/api/login", &json!({ "token": "not-the-token" }))?;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(wrong.header("set-cookie"), None);

    let login = post(address, "/api/login", &json!({ "token": TOKEN }))?;
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login.header("set-cookie").context("no cookie set")?;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "{cookie}");
    let pair = cookie.split(';').next().context("cookie pair")?;

    let body = answer_body("alice", fixture.queries[0], "right");
    let response = request(
        address,
        "POST",
        "/api/answer",
        &[("Cookie", pair)],
        Some(&body),
    )?;
    assert_eq!(response.status, 200, "{}", response.body);
    let session = request(address, "GET", "/api/session", &[("Cookie", pair)], None)?;
    assert_eq!(session.json()?["authenticated"], true);
    Ok(())
}

#[test]
fn answer_committed_before_ok() -> Result<()> {
    let fixture = Fixture::start(loopback(), 2)?;
    let address = fixture.address();
    let query = fixture.queries[1];

    let response = post(
        address,
        "/api/answer",
        &answer_body("alice", query, "cant_tell"),
    )?;

    assert_eq!(response.status, 200, "{}", response.body);
    let document = response.json()?;
    assert_eq!(document["stored"], true);
    assert_eq!(document["query_id"], query.get());
    // A new connection reads the row as soon as the response arrived.
    let stored = fixture
        .store()?
        .answer(query)?
        .context("answer not stored")?;
    assert_eq!(stored.operator, "alice");
    assert_eq!(stored.answer.as_str(), "cant_tell");
    assert!((stored.response_secs - 1.5).abs() < 1e-6);
    assert_eq!(fixture.listener.committed.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn undo_reopens_own_last_answer() -> Result<()> {
    let fixture = Fixture::start(loopback(), 3)?;
    let address = fixture.address();
    let [first, second, _] = fixture.queries[..] else {
        anyhow::bail!("three queries expected");
    };
    for (query, answer) in [(first, "left"), (second, "right")] {
        let response = post(address, "/api/answer", &answer_body("alice", query, answer))?;
        assert_eq!(response.status, 200, "{}", response.body);
    }

    let other = post(address, "/api/undo", &json!({ "operator": "bob" }))?;
    assert_eq!(other.status, 404, "{}", other.body);
    assert_eq!(other.json()?["error"], "nothing_to_undo");

    let undone = post(address, "/api/undo", &json!({ "operator": "alice" }))?;
    assert_eq!(undone.status, 200, "{}", undone.body);
    let document = undone.json()?;
    assert_eq!(document["undone"]["query_id"], second.get());
    assert_eq!(document["undone"]["answer"], "right");
    assert_eq!(document["query"]["id"], second.get());

    let store = fixture.store()?;
    assert!(store.answer(second)?.is_none());
    assert!(store.answer(first)?.is_some());
    let open: Vec<QueryId> = store
        .unanswered_queries(unix_secs_now())?
        .into_iter()
        .map(|query| query.id)
        .collect();
    assert!(open.contains(&second), "{open:?}");
    assert_eq!(fixture.listener.undone.load(Ordering::SeqCst), 1);
    // The reopened query goes back to the operator who undid it.
    assert_eq!(next_query_id(address, "alice")?, Some(second.get()));
    Ok(())
}

#[test]
fn undo_after_window_rejected() -> Result<()> {
    let settings = ConsoleSettings {
        undo_window_secs: 0.3,
        ..loopback()
    };
    let fixture = Fixture::start(settings, 1)?;
    let address = fixture.address();
    let query = fixture.queries[0];
    let response = post(address, "/api/answer", &answer_body("alice", query, "left"))?;
    assert_eq!(response.status, 200, "{}", response.body);

    std::thread::sleep(Duration::from_millis(600));
    let late = post(address, "/api/undo", &json!({ "operator": "alice" }))?;

    assert_eq!(late.status, 404, "{}", late.body);
    assert!(late.body.contains("0.3 s"), "{}", late.body);
    assert!(fixture.store()?.answer(query)?.is_some());
    assert_eq!(fixture.listener.undone.load(Ordering::SeqCst), 0);
    Ok(())
}

#[test]
fn two_operators_get_different_queries() -> Result<()> {
    let fixture = Fixture::start(loopback(), 2)?;
    let address = fixture.address();
    let [first, second] = fixture.queries[..] else {
        anyhow::bail!("two queries expected");
    };

    assert_eq!(next_query_id(address, "alice")?, Some(first.get()));
    assert_eq!(next_query_id(address, "bob")?, Some(second.get()));
    assert_eq!(next_query_id(address, "alice")?, Some(first.get()));
    let carol = post(address, "/api/next", &json!({ "operator": "carol" }))?.json()?;
    assert_eq!(carol["query"], Value::Null);
    let reason = carol["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("other operators"), "{reason}");

    let taken = post(
        address,
        "/api/answer",
        &answer_body("alice", second, "left"),
    )?;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(taken.json()?["error"], "leased");
    assert!(fixture.store()?.answer(second)?.is_none());

    let own = post(address, "/api/answer", &answer_body("bob", second, "left"))?;
    assert_eq!(own.status, 200, "{}", own.body);
    Ok(())
}

#[test]
fn rejections_name_reason() -> Result<()> {
    let fixture = Fixture::start(loopback(), 2)?;
    let address = fixture.address();
    let query = fixture.queries[0];
    let mut store = fixture.store()?;
    let expired = insert_query(
        &mut store,
        fixture.episodes[2],
        fixture.episodes[3],
        5,
        10,
        Some(unix_secs_now() - 5.0),
    );
    let first = post(address, "/api/answer", &answer_body("alice", query, "left"))?;
    assert_eq!(first.status, 200, "{}", first.body);

    let malformed = request(
        address,
        "POST",
        "/api/answer",
        &[("Content-Type", "application/json")],
        None,
    )?;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert_eq!(malformed.json()?["error"], "invalid");

    let cases = [
        (
            answer_body("alice", QueryId(999), "left"),
            404,
            "unknown_query",
            "999",
        ),
        (
            answer_body("bob", query, "right"),
            409,
            "duplicate",
            "already answered",
        ),
        (
            answer_body("alice", expired, "left"),
            410,
            "expired",
            "expired",
        ),
        (
            answer_body("alice", fixture.queries[1], "maybe"),
            400,
            "invalid",
            "\"maybe\"",
        ),
        (
            answer_body("<img src=x>", fixture.queries[1], "left"),
            400,
            "invalid",
            "operator name \"<img src=x>\"",
        ),
        (
            json!({ "operator": "alice", "query_id": fixture.queries[1].get(),
                    "answer": "left", "response_time_sec": -1.0 }),
            400,
            "invalid",
            "response_time_sec -1",
        ),
    ];
    for (body, status, kind, named) in cases {
        let response = post(address, "/api/answer", &body)?;
        assert_eq!(response.status, status, "{body}: {}", response.body);
        let document = response.json()?;
        assert_eq!(document["error"], kind, "{body}");
        let message = document["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{body}: {message}");
    }
    assert!(store.answer(fixture.queries[1])?.is_none());
    assert_eq!(
        store.answer(query)?.context("first answer")?.operator,
        "alice"
    );
    Ok(())
}

#[test]
fn page_has_strict_security_headers() -> Result<()> {
    let fixture = Fixture::start(loopback(), 1)?;
    for path in ["/", "/console.js", "/api/status"] {
        let response = request(fixture.address(), "GET", path, &[], None)?;
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        let policy = response
            .header("content-security-policy")
            .context("no Content-Security-Policy")?;
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    }
    let page = request(fixture.address(), "GET", "/", &[], None)?;
    assert!(!page.body.contains("<script>"), "inline script in the page");
    assert!(!page.body.contains("style="), "inline style in the page");
    assert!(!page.body.contains("onclick"), "inline handler in the page");
    Ok(())
}

#[test]
fn foreign_host_and_origin_rejected() -> Result<()> {
    let fixture = Fixture::start(loopback(), 2)?;
    let address = fixture.address();
    let body = json!({ "operator": "alice" });

    // A page of another site that rebinds its name to 127.0.0.1 sends its own Host.
    let rebound = request(
        address,
        "GET",
        "/api/status",
        &[("Host", "attacker.example")],
        None,
    )?;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert!(
        rebound.body.contains("attacker.example"),
        "{}",
        rebound.body
    );
    let rebound = request(
        address,
        "POST",
        "/api/next",
        &[("Host", "attacker.example:8470")],
        Some(&body),
    )?;
    assert_eq!(rebound.status, 403, "{}", rebound.body);

    // A cross-site POST carries the other site's Origin.
    let cross = request(
        address,
        "POST",
        "/api/next",
        &[("Origin", "http://evil.example")],
        Some(&body),
    )?;
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert!(cross.body.contains("evil.example"), "{}", cross.body);

    // The console's own origin, and localhost, are accepted.
    let own_origin = format!("http://{address}");
    let own = request(
        address,
        "POST",
        "/api/next",
        &[("Origin", own_origin.as_str())],
        Some(&body),
    )?;
    assert_eq!(own.status, 200, "{}", own.body);
    let local_host = format!("localhost:{}", address.port());
    let local = request(
        address,
        "GET",
        "/api/status",
        &[("Host", local_host.as_str())],
        None,
    )?;
    assert_eq!(local.status, 200, "{}", local.body);
    Ok(())
}

#[test]
fn segment_steps_and_media_served() -> Result<()> {
    let fixture = Fixture::start(loopback(), 1)?;
    let address = fixture.address();
    let episode = fixture.episodes[1].get();

    let steps = request(
        address,
        "GET",
        &format!("/api/segments/{episode}/2/3/steps"),
        &[],
        None,
    )?;
    assert_eq!(steps.status, 200, "{}", steps.body);
    let document = steps.json()?;
    // Episode 1 starts at global step 20; observation g is [g, g + 0.25, g + 0.5].
    assert_eq!(document["observations"][0], json!([22.0, 22.25, 22.5]));
    assert_eq!(document["observations"].as_array().map(Vec::len), Some(3));
    assert_eq!(document["actions"][2], json!([-24.0, 24.0]));
    assert_eq!(document["observation_names"], json!(["x", "y", "z"]));
    assert_eq!(document["action_names"], json!(["action[0]", "action[1]"]));

    // Steps 2 to 4 of episode 1 have frames at 2 and 4, served with their type.
    let media = request(
        address,
        "GET",
        &format!("/api/segments/{episode}/2/3/media"),
        &[],
        None,
    )?;
    assert_eq!(media.status, 200, "{}", media.body);
    let media = media.json()?;
    assert_eq!(media["kind"], "frames", "{media}");
    assert_eq!(media["count"], 2, "{media}");
    assert_eq!(media["frames"][1]["step"], 4, "{media}");
    assert_eq!(media["frames"][1]["content_type"], "image/png", "{media}");
    let frame = request(
        address,
        "GET",
        &format!("/api/frames/{episode}/4"),
        &[],
        None,
    )?;
    assert_eq!(frame.status, 200, "{}", frame.body);
    assert_eq!(frame.header("content-type"), Some("image/png"));
    assert_eq!(
        frame.body,
        String::from_utf8_lossy(&frame_bytes(4)),
        "frame 4's bytes"
    );

    // Another episode has no frames, and its recording-less fixture dataset no clip.
    let other = fixture.episodes[2].get();
    let none = request(
        address,
        "GET",
        &format!("/api/segments/{other}/2/3/media"),
        &[],
        None,
    )?
    .json()?;
    assert_eq!(none["kind"], "none", "{none}");
    assert!(none["reason"].is_string(), "{none}");

    let cases = [
        (
            format!("/api/segments/{episode}/15/10/steps"),
            400,
            "20 steps",
        ),
        (
            format!("/api/segments/{episode}/0/0/steps"),
            400,
            "length 0",
        ),
        ("/api/segments/999/0/5/media".to_owned(), 404, "episode 999"),
        (format!("/api/frames/{episode}/3"), 404, "no camera frame"),
        (
            format!("/api/segments/{episode}/2/3/clip"),
            404,
            "not rendered",
        ),
        (format!("/api/segments/{episode}/x/5/steps"), 400, ""),
    ];
    for (path, status, named) in cases {
        let response = request(address, "GET", &path, &[], None)?;
        assert_eq!(response.status, status, "{path}: {}", response.body);
        assert!(response.body.contains(named), "{path}: {}", response.body);
    }
    Ok(())
}

#[test]
fn events_stream_reports_answers() -> Result<()> {
    let fixture = Fixture::start(loopback(), 1)?;
    let address = fixture.address();
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    assert!(status.contains("200"), "{status}");
    // Give the stream time to subscribe before the answer is sent.
    std::thread::sleep(Duration::from_millis(200));

    let query = fixture.queries[0];
    let response = post(address, "/api/answer", &answer_body("alice", query, "left"))?;
    assert_eq!(response.status, 200, "{}", response.body);

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        seen.push_str(&line);
        if seen.contains("event: answers") && seen.contains("\"alice\"") {
            return Ok(());
        }
    }
    anyhow::bail!("no answers event within 5 s; stream so far:\n{seen}")
}

#[test]
fn stop_ends_event_streams() -> Result<()> {
    let fixture = Fixture::start(loopback(), 1)?;
    let address = fixture.address();
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {address}\r\n\r\n"
    )?;
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let Fixture { console, .. } = fixture;
    console.stop()?;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest)?;
    Ok(())
}

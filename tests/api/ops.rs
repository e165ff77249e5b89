//! What operators and older clients rely on: metrics, request ids,
//! compatibility routes and the OpenAPI document.

use serde_json::{json, Value};

use crate::helpers::{connect, next_json, spawn_app, TestApp, TestDb};
use server::both_backends;

both_backends!(
    metrics_are_exposed_in_prometheus_format,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        app.post("alice", "counted").await;
        let mut ws = connect(&app.ws_url("?after=0")).await;
        next_json(&mut ws).await; // the backlog message
        assert_eq!(next_json(&mut ws).await["type"], "ready");
        let res = app.http.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = res.text().await.unwrap();
        for name in [
            "http_request_duration_seconds_bucket",
            "websocket_connections_active",
            "websocket_connects_total",
            "websocket_resumes_total",
            "websocket_resume_replayed_messages",
            "messages_processed_total{kind=\"user\"}",
            "db_pool_connections{state=\"in_use\"}",
            "db_pool_connections{state=\"idle\"}",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        assert!(
            text.contains(r#"route="/api/messages""#) && text.contains(r#"method="POST""#),
            "HTTP timings are labelled by matched route"
        );
    }
);

#[tokio::test]
async fn metrics_can_live_on_a_separate_address() {
    let app = spawn_app(TestDb::sqlite().await, &[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_ne!(
        res.status(),
        200,
        "not on the public port when METRICS_ADDR is set"
    );
}

both_backends!(request_ids_are_returned, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    let res = app
        .http
        .get(app.url("/health"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-123");
    let res = app.http.get(app.url("/health")).send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap();
    let parsed = uuid::Uuid::parse_str(generated)
        .unwrap_or_else(|e| panic!("a UUID is generated, got {generated:?}: {e}"));
    assert_eq!(parsed.get_version_num(), 4, "a random UUID: {generated}");
});

both_backends!(compatibility_routes, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    // POST /messages is POST /api/messages.
    let res = app
        .http
        .post(app.url("/messages"))
        .json(&json!({"sender": "old-client", "content": "hello from curl"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let posted: Value = res.json().await.unwrap();
    // GET /messages is GET /api/messages.
    let res = app.http.get(app.url("/messages")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["messages"][0], posted);
    // POST /create/ is a plain form post that redirects to the page.
    let res = app
        .http
        .post(app.url("/create/"))
        .form(&[("sender", "form-user"), ("content", "from the old form")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/r/lobby");
    assert_eq!(app.messages("").await[1]["content"], "from the old form");
    // A refused one comes back to the room page with its error and text,
    // and `/` passes them on to the lobby.
    let res = app
        .http
        .post(app.url("/create/"))
        .form(&[("sender", "form-user"), ("content", "   ")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/r/lobby?error=content_empty&draft=%20%20%20"
    );
    let res = app
        .http
        .get(app.url("/?error=content_empty&draft=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["location"],
        "/r/lobby?error=content_empty&draft=x"
    );
    let page = app
        .page("/r/lobby?error=sender_empty&draft=keep%20me")
        .await;
    assert!(
        page.contains("Please enter a name."),
        "the error shows in the page"
    );
    assert!(page.contains("keep me"), "the draft is back in the box");
    let res = app
        .http
        .post(app.url("/create/"))
        .form(&[("sender", "x"), ("content", " ")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/r/lobby?error=content_empty"));
    // GET /health/ is GET /health.
    let res = app.http.get(app.url("/health/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "ok", "db": "ok"})
    );
});

/// Checks `value` against an OpenAPI 3.1 schema (the subset utoipa emits:
/// $ref, type (or a list of types), properties, required, items, enum,
/// formats date-time and uuid).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return validate(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = options
            .iter()
            .any(|o| std::panic::catch_unwind(|| validate(doc, o, value, at)).is_ok());
        assert!(ok, "{at}: {value} matches none of {options:?}");
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        assert!(ok, "{at}: expected {types:?}, got {value}");
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        assert!(allowed.contains(value), "{at}: {value} not in {allowed:?}");
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => {
            assert!(
                chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).is_ok(),
                "{at}: {value}"
            )
        }
        Some("uuid") => assert!(
            uuid::Uuid::parse_str(value.as_str().unwrap()).is_ok(),
            "{at}: {value}"
        ),
        _ => {}
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required {
            let key = key.as_str().unwrap();
            assert!(
                value.get(key).is_some(),
                "{at}: missing required {key} in {value}"
            );
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (key, v) in obj {
            let sub = props
                .get(key)
                .unwrap_or_else(|| panic!("{at}: {key} is not documented"));
            validate(doc, sub, v, &format!("{at}.{key}"));
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"));
        }
    }
}

fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: &str) -> &'a Value {
    let s =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(!s.is_null(), "{method} {path} documents {status}");
    s
}

async fn checked(
    app: &TestApp,
    doc: &Value,
    req: reqwest::RequestBuilder,
    path: &str,
    method: &str,
) -> Value {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16().to_string();
    let body: Value = res.json().await.unwrap();
    validate(
        doc,
        response_schema(doc, path, method, &status),
        &body,
        &format!("{method} {path} {status}"),
    );
    let _ = app;
    body
}

both_backends!(
    openapi_document_matches_real_responses,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let doc: Value = app
            .http
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let post = |body: Value| app.http.post(app.url("/api/messages")).json(&body);
        checked(
            &app,
            &doc,
            post(json!({"sender": "a", "content": "documented"})),
            "/api/messages",
            "post",
        )
        .await;
        checked(
            &app,
            &doc,
            post(json!({"sender": "", "content": "x"})),
            "/api/messages",
            "post",
        )
        .await;
        checked(
            &app,
            &doc,
            post(json!({"content": "x"})),
            "/api/messages",
            "post",
        )
        .await;
        let list = checked(
            &app,
            &doc,
            app.http.get(app.url("/api/messages?limit=5")),
            "/api/messages",
            "get",
        )
        .await;
        assert_eq!(list["messages"].as_array().unwrap().len(), 1);
        checked(
            &app,
            &doc,
            app.http.get(app.url("/api/messages?limit=0")),
            "/api/messages",
            "get",
        )
        .await;
        checked(
            &app,
            &doc,
            app.http.get(app.url("/api/messages?room=BAD")),
            "/api/messages",
            "get",
        )
        .await;
        checked(
            &app,
            &doc,
            app.http.get(app.url("/health")),
            "/health",
            "get",
        )
        .await;
        // Every documented query parameter is one the server reads.
        let params: Vec<&str> = doc["paths"]["/api/messages"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["room", "after", "before", "limit"]);
    }
);

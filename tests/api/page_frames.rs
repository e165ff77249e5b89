//! Room pages filled into kept frames are the pages a fresh render writes,
//! for every kind of viewer and room, on both backends.

use reqwest::{header, Response};
use serde_json::{json, Value};

use crate::helpers::{named_session, new_session, spawn_app, TestApp, TestDb};
use server::both_backends;

/// A page's body and the headers that matter, with this response's nonce and
/// form id replaced by fixed words (both are fresh for every page).
struct Page {
    body: String,
    csp: String,
    content_type: String,
    frame: Option<String>,
}

async fn page(app: &TestApp, path: &str, token: &str) -> Page {
    let res = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    read(res).await
}

/// Leptos lists the resources it waits for from a hash set, so two renders
/// of one page list them in either order: sorted here.
fn sorted_pending(body: &str) -> String {
    const LIST: &str = "__PENDING_RESOURCES=[";
    let Some((before, rest)) = body.split_once(LIST) else {
        return body.to_owned();
    };
    let (ids, after) = rest.split_once(']').unwrap();
    let mut ids: Vec<&str> = ids.split(',').filter(|id| !id.is_empty()).collect();
    ids.sort_unstable();
    format!("{before}{LIST}{}]{after}", ids.join(","))
}

async fn read(res: Response) -> Page {
    let header = |name: header::HeaderName| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let csp = header(header::CONTENT_SECURITY_POLICY).unwrap();
    let content_type = header(header::CONTENT_TYPE).unwrap();
    let frame = header(header::HeaderName::from_static("server-timing"));
    let body = res.text().await.unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap()
        .to_owned();
    assert!(
        body.contains(&format!(r#"nonce="{nonce}""#)),
        "the page's scripts carry the policy's nonce"
    );
    let form_id = body
        .split(r#"form_id\":\""#)
        .nth(1)
        .and_then(|rest| rest.get(..36))
        .unwrap()
        .to_owned();
    Page {
        body: sorted_pending(&body.replace(&nonce, "NONCE").replace(&form_id, "FORM-ID")),
        csp: csp.replace(&nonce, "NONCE"),
        content_type,
        frame,
    }
}

/// Posts as the session with `token`, or as a guest without one.
const KEPT: &str = r#"frame;desc="kept""#;
const RENDERED: &str = r#"frame;desc="rendered""#;

/// Fetches `path` as the session with `token` from its frame and rendered
/// whole (a query skips the frame), checks that the two are the same page,
/// and says how the frame came to be.
async fn framed_as_fresh(app: &TestApp, path: &str, token: &str) -> &'static str {
    let framed = page(app, path, token).await;
    let fresh = page(app, &format!("{path}?fresh"), token).await;
    assert_eq!(fresh.frame, None, "a page with a query is rendered whole");
    assert_eq!(framed.csp, fresh.csp);
    assert_eq!(framed.content_type, fresh.content_type);
    if framed.body != fresh.body {
        let at = framed
            .body
            .bytes()
            .zip(fresh.body.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(framed.body.len().min(fresh.body.len()));
        let around =
            |body: &str| body[at.saturating_sub(80)..(at + 200).min(body.len())].to_owned();
        panic!(
            "{path}: the page from its frame differs from the fresh render at byte {at}:\n\
             framed: {}\nfresh:  {}",
            around(&framed.body),
            around(&fresh.body),
        );
    }
    match framed.frame.as_deref() {
        Some(KEPT) => KEPT,
        Some(RENDERED) => RENDERED,
        other => panic!("{path} did not come from a frame: {other:?}"),
    }
}

async fn post(
    app: &TestApp,
    token: Option<&str>,
    room: &str,
    sender: &str,
    content: &str,
) -> String {
    let mut req = app
        .http
        .post(app.url("/api/messages"))
        .json(&json!({"room": room, "sender": sender, "content": content}));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn call(token: &str, req: reqwest::RequestBuilder) {
    let res = req.bearer_auth(token).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
}

both_backends!(
    a_page_from_a_kept_frame_is_the_page_a_fresh_render_writes,
    |db: TestDb| async move {
        let moderator_token = "a-moderator-token-for-frame-tests";
        let app = spawn_app(db, &[("MODERATOR_TOKEN", moderator_token)]).await;
        let base = app.url("");
        // A name to escape, a session with no name, a moderator.
        let ann_name = r#"Ann "<b>" & 日本"#;
        let ann = named_session(&app.http, &base, ann_name).await;
        let guest = new_session(&app.http, &base).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let moderator = named_session(&app.http, &base, "mod").await;
        call(
            &moderator,
            app.http
                .post(app.url("/api/become_moderator"))
                .form(&[("token", moderator_token)]),
        )
        .await;

        // Every kind of row: own and others', escaped text, edited,
        // deleted, reacted to (by the viewer and not), a guest's.
        let first = post(
            &app,
            Some(&ann),
            "lobby",
            ann_name,
            "<script>alert(1)</script> \"q\" & \u{2028} 🌸",
        )
        .await;
        post(
            &app,
            None,
            "lobby",
            "guest",
            "https://example.com/?a=1&b=<2>",
        )
        .await;
        let edited = post(&app, Some(&ann), "lobby", ann_name, "before").await;
        let deleted = post(&app, Some(&moderator), "lobby", "mod", "gone soon").await;
        call(
            &ann,
            app.http
                .patch(app.url(&format!("/api/messages/{edited}")))
                .json(&json!({"content": "after </script>"})),
        )
        .await;
        call(
            &moderator,
            app.http
                .delete(app.url(&format!("/api/messages/{deleted}"))),
        )
        .await;
        call(
            &guest,
            app.http
                .post(app.url(&format!("/api/messages/{first}/reactions")))
                .json(&json!({"emoji": "👍"})),
        )
        .await;
        // A room with older messages to load, and an empty one.
        for i in 0..55 {
            post(&app, None, "long", "guest", &format!("number {i}")).await;
        }

        for room in ["lobby", "long", "quiet"] {
            let path = format!("/r/{room}");
            let mut frames = Vec::new();
            for viewer in [&ann, &guest, &moderator] {
                let framed = framed_as_fresh(&app, &path, viewer).await;
                frames.push(framed);
            }
            // One frame for the room, filled for each viewer.
            assert_eq!(frames, [RENDERED, KEPT, KEPT], "{path}");
        }
        // The viewer's own rows and name are theirs, not the frame's first
        // viewer's: Ann's page has her name and her message's menu.
        let ann_page = page(&app, "/r/lobby", &ann).await.body;
        assert!(ann_page.contains(r#"value="Ann &quot;&lt;b&gt;&quot; &amp; 日本""#));
        let guest_page = page(&app, "/r/lobby", &guest).await.body;
        assert!(guest_page.contains(r#"name="sender""#) && !guest_page.contains(r#"value="Ann"#));
    }
);

both_backends!(a_kept_frame_shows_every_new_post, |db: TestDb| async move {
    let app = spawn_app(db, &[]).await;
    let token = named_session(&app.http, &app.url(""), "Bo").await;
    post(&app, Some(&token), "lobby", "Bo", "first").await;
    assert_eq!(framed_as_fresh(&app, "/r/lobby", &token).await, RENDERED);
    // A post into the only room reorders nothing: the frame is kept,
    // and the page has the post and the room list's new count.
    post(&app, Some(&token), "lobby", "Bo", "second").await;
    assert_eq!(framed_as_fresh(&app, "/r/lobby", &token).await, KEPT);
    let body = page(&app, "/r/lobby", &token).await.body;
    assert!(body.contains("second") && body.contains(r#"last_seq\":2"#));
    // A post into another room puts it on top: a new frame.
    post(&app, Some(&token), "other", "Bo", "elsewhere").await;
    assert_eq!(framed_as_fresh(&app, "/r/lobby", &token).await, RENDERED);
    let body = page(&app, "/r/lobby", &token).await.body;
    assert!(body.contains(r#"href="/r/other""#));
});

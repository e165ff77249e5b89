//! The page's form without WASM: a plain form post to the server function.

use crate::helpers::{spawn_app, TestDb};
use server::both_backends;

fn form_post(app: &crate::helpers::TestApp, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    app.http
        .post(app.url("/api/post_message"))
        .header("accept", "text/html,application/xhtml+xml")
        .header("referer", app.url("/r/lobby"))
        .form(fields)
}

both_backends!(
    plain_form_post_redirects_back_with_the_message,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        // The browser opened the page first, and got its session there.
        let page = app.http.get(app.url("/r/lobby")).send().await.unwrap();
        let session = page.headers()["set-cookie"].to_str().unwrap();
        let session = session.split(';').next().unwrap().to_owned();
        let id = uuid::Uuid::new_v4().to_string();
        let fields = [
            ("room", "lobby"),
            ("id", id.as_str()),
            ("sender", "nojs"),
            ("content", "line 1\r\nline 2"),
        ];
        let res = form_post(&app, &fields)
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(res.headers()["location"], "/r/lobby");
        // A double submit of the same form stores one message.
        let again = form_post(&app, &fields).header("cookie", &session);
        assert_eq!(again.send().await.unwrap().status(), 302);
        let stored = app.messages("").await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["content"], "line 1\nline 2");
        assert_eq!(stored[0]["id"], id.as_str());

        // The page it redirects to shows the message, marked as the sender's own.
        let html = app
            .http
            .get(app.url("/r/lobby"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("line 1\nline 2"));
        assert!(html.contains(r#"class="msg own""#), "own message is marked");
        // The name is the session's now: the composer shows it.
        assert!(html.contains(r#"value="nojs""#), "the name is filled in");
    }
);

both_backends!(
    plain_form_errors_come_back_in_the_page,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let res = form_post(
            &app,
            &[
                ("room", "lobby"),
                ("id", ""),
                ("sender", "nojs"),
                ("content", "bad\u{1}text"),
            ],
        )
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), 302);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with("/r/lobby?error=content_control&draft=bad"),
            "{location}"
        );
        let html = app
            .http
            .get(app.url(&location))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("Messages cannot contain control characters"),
            "error shown"
        );
        assert!(app.messages("").await.is_empty());
    }
);

both_backends!(
    server_function_called_from_wasm_answers_json,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let res = app
            .http
            .post(app.url("/api/post_message"))
            .header("accept", "application/json")
            .form(&[("room", "lobby"), ("sender", "wasm"), ("content", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let res = app
            .http
            .post(app.url("/api/post_message"))
            .header("accept", "application/json")
            .form(&[("room", "lobby"), ("sender", "wasm"), ("content", "hi")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["content"], "hi");
        assert_eq!(body["seq"], 1);
    }
);

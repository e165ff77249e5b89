//! Who said it, and taking it back: sessions, held names, edits,
//! deletions, reactions, moderation, on both backends.

use std::time::Duration;

use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{connect, new_session, next_json, spawn_app, TestApp, TestDb};
use server::both_backends;

/// An API session: its token and author id.
struct Who {
    token: String,
    author: String,
}

async fn session(app: &TestApp) -> Who {
    let body = new_session(&app.http, &app.url("")).await;
    Who {
        token: body["token"].as_str().unwrap().to_owned(),
        author: body["author"].as_str().unwrap().to_owned(),
    }
}

async fn post_as(
    app: &TestApp,
    who: Option<&Who>,
    room: &str,
    sender: &str,
    content: &str,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/api/messages"))
        .json(&json!({"room": room, "sender": sender, "content": content}));
    if let Some(who) = who {
        req = req.bearer_auth(&who.token);
    }
    req.send().await.unwrap()
}

async fn name(app: &TestApp, who: &Who, name: &str) -> reqwest::Response {
    app.http
        .put(app.url("/api/session/name"))
        .bearer_auth(&who.token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
}

async fn edit(app: &TestApp, who: &Who, id: &str, content: &str) -> reqwest::Response {
    app.http
        .patch(app.url(&format!("/api/messages/{id}")))
        .bearer_auth(&who.token)
        .json(&json!({ "content": content }))
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, who: &Who, id: &str) -> reqwest::Response {
    app.http
        .delete(app.url(&format!("/api/messages/{id}")))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap()
}

async fn react(app: &TestApp, who: &Who, id: &str, emoji: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/messages/{id}/reactions")))
        .bearer_auth(&who.token)
        .json(&json!({ "emoji": emoji }))
        .send()
        .await
        .unwrap()
}

async fn error_of(res: reqwest::Response) -> String {
    let v: Value = res.json().await.unwrap();
    v["error"].as_str().unwrap().to_owned()
}

both_backends!(
    a_browser_gets_a_session_cookie_on_its_first_page,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let res = app.http.get(app.url("/r/lobby")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let cookie = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.starts_with("chat_session="), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert!(!cookie.contains("Secure"), "not over plain HTTP");
        let token = cookie.split(';').next().unwrap().to_owned();
        // The same browser comes back: same session, no new cookie.
        let res = app
            .http
            .get(app.url("/r/lobby"))
            .header(header::COOKIE, &token)
            .send()
            .await
            .unwrap();
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        let me: Value = app
            .http
            .get(app.url("/api/session"))
            .header(header::COOKIE, &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["author"].as_str().unwrap().len(), 32);
        // The JSON API does not hand out cookies.
        let res = app.http.get(app.url("/api/messages")).send().await.unwrap();
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        // An API client gets a token, and its posts carry its author id.
        let who = session(&app).await;
        assert_eq!(name(&app, &who, "api-bot").await.status(), 200);
        let res = post_as(&app, Some(&who), "lobby", "api-bot", "hello").await;
        assert_eq!(res.status(), 201);
        let posted: Value = res.json().await.unwrap();
        assert_eq!(posted["author"], who.author.as_str());
        // A made-up token is no session.
        let me: Value = app
            .http
            .get(app.url("/api/session"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(me["author"].is_null());
    }
);

both_backends!(
    names_are_held_and_compared_after_normalisation,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let (alice, bob) = (session(&app).await, session(&app).await);
        let res = name(&app, &alice, "Alice").await;
        assert_eq!(res.status(), 200);
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["name"], "Alice");
        for taken in ["Alice", "alice", "ALICE", "ａｌｉｃｅ", "  alice  "] {
            let res = name(&app, &bob, taken).await;
            assert_eq!(res.status(), 409, "{taken:?}");
            assert!(error_of(res).await.contains("in use"));
            // Posting under it is refused too.
            assert_eq!(
                post_as(&app, Some(&bob), "lobby", taken, "hi")
                    .await
                    .status(),
                409
            );
        }
        // Guests never post under a held name, but may under a free one.
        assert_eq!(
            post_as(&app, None, "lobby", "alice", "hi").await.status(),
            409
        );
        let res = post_as(&app, None, "lobby", "visitor", "hi").await;
        assert_eq!(res.status(), 201);
        let guest: Value = res.json().await.unwrap();
        assert!(
            guest.get("author").is_none(),
            "a guest has no author id: {guest}"
        );
        // The holder posts as herself, in any spelling she likes.
        let res = post_as(&app, Some(&alice), "lobby", "ALICE", "it's me").await;
        assert_eq!(res.status(), 201);
        let mine: Value = res.json().await.unwrap();
        assert_eq!(mine["author"], alice.author.as_str());
        // Renaming frees nothing she still holds, and takes the new one.
        assert_eq!(name(&app, &alice, "Alicia").await.status(), 200);
        assert_eq!(name(&app, &bob, "alicia").await.status(), 409);
    }
);

both_backends!(names_expire_after_the_hold, |db: TestDb| async move {
    let app = spawn_app(db, &[("NAME_HOLD_DAYS", "0.00001")]).await; // under a second
    let (alice, bob) = (session(&app).await, session(&app).await);
    assert_eq!(name(&app, &alice, "carol").await.status(), 200);
    assert_eq!(name(&app, &bob, "carol").await.status(), 409);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        name(&app, &bob, "carol").await.status(),
        200,
        "an expired hold is free"
    );
});

both_backends!(
    authors_edit_their_own_messages_within_the_window,
    |db: TestDb| async move {
        let app = spawn_app(db, &[("EDIT_WINDOW_SECS", "2")]).await;
        let (alice, bob) = (session(&app).await, session(&app).await);
        let res = post_as(&app, Some(&alice), "lobby", "alice", "frist").await;
        let posted: Value = res.json().await.unwrap();
        let id = posted["id"].as_str().unwrap().to_owned();
        let res = edit(&app, &alice, &id, "first").await;
        assert_eq!(res.status(), 200);
        let event: Value = res.json().await.unwrap();
        assert_eq!(event["kind"], "edit");
        assert_eq!(event["target"], posted["seq"]);
        assert_eq!(event["content"], "first");
        assert_eq!(
            event["seq"],
            posted["seq"].as_i64().unwrap() + 1,
            "an event takes the next seq"
        );
        // Not someone else's, not a missing one, not invalid text.
        assert_eq!(edit(&app, &bob, &id, "mine now").await.status(), 403);
        assert_eq!(
            edit(&app, &alice, &uuid::Uuid::new_v4().to_string(), "x")
                .await
                .status(),
            404
        );
        assert_eq!(edit(&app, &alice, &id, "   ").await.status(), 422);
        assert_eq!(edit(&app, &alice, "not-a-uuid", "x").await.status(), 422);
        // History shows the current text, with when it was edited.
        let page = app.messages("?room=lobby").await;
        assert_eq!(page.len(), 1, "events are not history entries: {page:?}");
        assert_eq!(page[0]["content"], "first");
        assert!(page[0]["edited_at"].is_string());
        // After the window: too late.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let res = edit(&app, &alice, &id, "first!").await;
        assert_eq!(res.status(), 409);
        assert!(error_of(res).await.contains("edit window"));
    }
);

both_backends!(
    authors_delete_their_own_and_moderators_anyones,
    |db: TestDb| async move {
        let token = "a-moderator-token-for-tests";
        let app = spawn_app(db, &[("MODERATOR_TOKEN", token)]).await;
        let (alice, bob, moderator) = (
            session(&app).await,
            session(&app).await,
            session(&app).await,
        );
        let id_of = |v: &Value| v["id"].as_str().unwrap().to_owned();
        let a1: Value = post_as(&app, Some(&alice), "lobby", "alice", "one")
            .await
            .json()
            .await
            .unwrap();
        let a2: Value = post_as(&app, Some(&alice), "lobby", "alice", "two")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(delete(&app, &bob, &id_of(&a1)).await.status(), 403);
        let res = delete(&app, &alice, &id_of(&a1)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["kind"], "delete");
        assert_eq!(
            delete(&app, &alice, &id_of(&a1)).await.status(),
            409,
            "already deleted"
        );
        // A wrong token makes nobody a moderator; the right one does.
        let become_moderator = |t: &'static str| {
            app.http
                .post(app.url("/api/become_moderator"))
                .bearer_auth(&moderator.token)
                .form(&[("token", t)])
                .send()
        };
        assert_eq!(
            become_moderator("not-the-token-at-all")
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(delete(&app, &moderator, &id_of(&a2)).await.status(), 403);
        assert_eq!(become_moderator(token).await.unwrap().status(), 200);
        assert_eq!(delete(&app, &moderator, &id_of(&a2)).await.status(), 200);
        // History keeps tombstones without their text.
        let page = app.messages("?room=lobby").await;
        assert_eq!(page.len(), 2);
        for m in &page {
            assert_eq!(m["deleted"], true);
            assert_eq!(m["content"], "");
        }
        // Broadcast-like rows cannot change; nor can events.
        let events = app.messages("?room=lobby&after=0").await;
        let event_id = id_of(events.iter().find(|m| m["kind"] == "delete").unwrap());
        assert_eq!(delete(&app, &moderator, &event_id).await.status(), 422);
    }
);

both_backends!(
    reactions_toggle_with_counts_and_mine,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let (alice, bob) = (session(&app).await, session(&app).await);
        let posted: Value = post_as(&app, Some(&alice), "lobby", "alice", "react to me")
            .await
            .json()
            .await
            .unwrap();
        let id = posted["id"].as_str().unwrap();
        let res = react(&app, &bob, id, "👍").await;
        assert_eq!(res.status(), 200);
        let event: Value = res.json().await.unwrap();
        assert_eq!(event["kind"], "react");
        assert_eq!(event["reactions"], json!([{"emoji": "👍", "count": 1}]));
        let event: Value = react(&app, &alice, id, "👍").await.json().await.unwrap();
        assert_eq!(event["reactions"], json!([{"emoji": "👍", "count": 2}]));
        let event: Value = react(&app, &alice, id, "🎉").await.json().await.unwrap();
        assert_eq!(
            event["reactions"],
            json!([{"emoji": "👍", "count": 2}, {"emoji": "🎉", "count": 1}])
        );
        // Toggling again takes it back.
        let event: Value = react(&app, &bob, id, "👍").await.json().await.unwrap();
        assert_eq!(event["kind"], "unreact");
        assert_eq!(
            event["reactions"],
            json!([{"emoji": "👍", "count": 1}, {"emoji": "🎉", "count": 1}])
        );
        // Only the fixed set.
        let res = react(&app, &bob, id, "🍕").await;
        assert_eq!(res.status(), 422);
        // History marks the viewer's own.
        let as_alice: Value = app
            .http
            .get(app.url("/api/messages?room=lobby"))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            as_alice["messages"][0]["reactions"],
            json!([{"emoji": "👍", "count": 1, "mine": true}, {"emoji": "🎉", "count": 1, "mine": true}])
        );
        let as_guest = app.messages("?room=lobby").await;
        assert_eq!(
            as_guest[0]["reactions"],
            json!([{"emoji": "👍", "count": 1}, {"emoji": "🎉", "count": 1}])
        );
    }
);

both_backends!(
    a_client_that_was_away_converges_from_the_events,
    |db: TestDb| async move {
        let app = spawn_app(db, &[]).await;
        let (alice, bob) = (session(&app).await, session(&app).await);
        let p1: Value = post_as(&app, Some(&alice), "conv", "alice", "one")
            .await
            .json()
            .await
            .unwrap();
        let p2: Value = post_as(&app, Some(&alice), "conv", "alice", "two")
            .await
            .json()
            .await
            .unwrap();
        // A client that saw both, then went away.
        let head = p2["seq"].as_i64().unwrap();
        let (id1, id2) = (p1["id"].as_str().unwrap(), p2["id"].as_str().unwrap());
        assert_eq!(edit(&app, &alice, id1, "one, edited").await.status(), 200);
        assert_eq!(react(&app, &bob, id2, "😂").await.status(), 200);
        assert_eq!(delete(&app, &alice, id2).await.status(), 200);
        // It resumes: exactly the events, in order, each once.
        let mut ws = connect(&app.ws_url(&format!("?room=conv&after={head}"))).await;
        let mut kinds = Vec::new();
        loop {
            let v = next_json(&mut ws).await;
            if v["type"] == "ready" {
                assert_eq!(v["head"], head + 3);
                break;
            }
            kinds.push((
                v["kind"].as_str().unwrap().to_owned(),
                v["target"].as_i64().unwrap(),
            ));
        }
        assert_eq!(
            kinds,
            [
                ("edit".to_owned(), p1["seq"].as_i64().unwrap()),
                ("react".to_owned(), head),
                ("delete".to_owned(), head)
            ]
        );
        // Live changes arrive the same way.
        assert_eq!(edit(&app, &alice, id1, "one, again").await.status(), 200);
        let live = next_json(&mut ws).await;
        assert_eq!(
            (live["kind"].as_str(), live["content"].as_str()),
            (Some("edit"), Some("one, again"))
        );
        // And history agrees with what the client built.
        let page = app.messages("?room=conv").await;
        assert_eq!(page[0]["content"], "one, again");
        assert_eq!(page[1]["deleted"], true);
        assert!(page[1].get("reactions").is_none());
    }
);

both_backends!(without_guests_only_sessions_post, |db: TestDb| async move {
    let app = spawn_app(db, &[("ALLOW_GUESTS", "false")]).await;
    let res = post_as(&app, None, "lobby", "visitor", "hi").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let who = session(&app).await;
    assert_eq!(
        post_as(&app, Some(&who), "lobby", "visitor", "hi")
            .await
            .status(),
        201
    );
});

both_backends!(
    a_banned_author_is_refused_everywhere,
    |db: TestDb| async move {
        let token = "a-moderator-token-for-tests";
        let app = spawn_app(db, &[("MODERATOR_TOKEN", token)]).await;
        let (spammer, moderator) = (session(&app).await, session(&app).await);
        let res = app
            .http
            .post(app.url("/api/become_moderator"))
            .bearer_auth(&moderator.token)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        for i in 0..3 {
            assert_eq!(
                post_as(
                    &app,
                    Some(&spammer),
                    "lobby",
                    "spammer",
                    &format!("spam {i}")
                )
                .await
                .status(),
                201
            );
        }
        // Its socket.
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                app.ws_url("?room=lobby"),
            )
            .unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", spammer.token).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "ready");
        // Only moderators ban.
        let ban = |who: &Who, remove: bool| {
            app.http
                .post(app.url("/api/bans"))
                .bearer_auth(&who.token)
                .json(&json!({"author": spammer.author, "remove_recent": remove}))
                .send()
        };
        assert_eq!(ban(&spammer, false).await.unwrap().status(), 403);
        let res = ban(&moderator, true).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["removed"], 3);
        // The socket is closed with 1008.
        let code = loop {
            match tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut ws))
                .await
            {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(c)))) => {
                    break c.map(|c| u16::from(c.code))
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        };
        assert_eq!(code, Some(1008));
        // Posts, changes and new sockets are refused; their messages are gone.
        let res = post_as(&app, Some(&spammer), "lobby", "spammer", "more").await;
        assert_eq!(res.status(), 403);
        assert!(error_of(res).await.contains("banned"));
        let page = app.messages("?room=lobby").await;
        assert!(page.iter().all(|m| m["deleted"] == true));
    }
);

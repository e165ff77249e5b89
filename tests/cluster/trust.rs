//! Trust across the real process: a ban on one instance closes the banned
//! author's socket on another; sign-in through the load balancer's header
//! is taken only with a valid signature from the expected signer.

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use futures::StreamExt;
use p256::{
    ecdsa::{signature::Signer, Signature, SigningKey},
    pkcs8::{EncodePublicKey, LineEnding},
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{
    helpers::{connect_as, named_session, next_frame, TestDb},
    support::Instance,
};

const MODERATOR_TOKEN: &str = "a-moderator-token-for-the-cluster";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ban_on_one_instance_closes_the_authors_socket_on_another() {
    let db = TestDb::postgres().await;
    let env = [("MODERATOR_TOKEN", MODERATOR_TOKEN)];
    let a = Instance::start(db.url(), &env).await;
    let b = Instance::start(db.url(), &env).await;
    let spammer = named_session(&b.http, &b.url(""), "spammer").await;
    let moderator = named_session(&a.http, &a.url(""), "moderator").await;
    let res = a
        .http
        .post(a.url("/api/become_moderator"))
        .bearer_auth(&moderator)
        .form(&[("token", MODERATOR_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The spammer is on B, posting and connected.
    let posted: Value = b
        .http
        .post(b.url("/api/messages"))
        .bearer_auth(&spammer)
        .json(&json!({"room": "lobby", "sender": "spammer", "content": "spam"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let author = posted["author"].as_str().unwrap().to_owned();
    let mut ws = connect_as(&b.ws_url("?room=lobby"), &spammer).await;
    while next_frame(&mut ws).await["type"] != "ready" {}

    // Banned on A.
    let res = a
        .http
        .post(a.url("/api/bans"))
        .bearer_auth(&moderator)
        .json(&json!({"author": author, "remove_recent": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["removed"], 1);

    // B closes the socket with 1008 and refuses the author from then on.
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 10 s");
    assert_eq!(code, Some(1008));
    let res = b
        .http
        .post(b.url("/api/messages"))
        .bearer_auth(&spammer)
        .json(&json!({"room": "lobby", "sender": "spammer", "content": "more"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // The ban survives a restart of B.
    drop(b);
    let b = Instance::start(db.url(), &env).await;
    let res = b
        .http
        .post(b.url("/api/messages"))
        .bearer_auth(&spammer)
        .json(&json!({"room": "lobby", "sender": "spammer", "content": "after restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// A key server on loopback, as AWS's `public-keys.auth.elb` endpoint: the
/// PEM public key for its one key id.
async fn key_server(kid: &'static str, pem: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let pem = pem.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let found = request.starts_with(&format!("GET /{kid} "));
                let response = if found {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{pem}",
                        pem.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .into()
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

/// A token as the load balancer mints it: ES256 over `header.payload`.
fn mint(key: &SigningKey, kid: &str, signer: &str, sub: &str, name: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 120;
    let header = json!({"typ": "JWT", "kid": kid, "alg": "ES256", "signer": signer, "exp": exp,
                        "iss": "https://idp.example", "client": "chat"});
    let claims = json!({"sub": sub, "name": name, "email": format!("{name}@example.com")});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: Signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_the_load_balancer_needs_a_valid_signature_and_signer() {
    const KID: &str = "test-key-1";
    const SIGNER: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/chat/1";
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let keys = key_server(KID, pem).await;
    let db = TestDb::sqlite().await;
    let key_url = format!("http://{keys}/{{kid}}");
    let app = Instance::start(
        db.url(),
        &[
            ("AUTH", "alb-oidc"),
            ("ALB_KEY_URL", &key_url),
            ("ALB_SIGNER", SIGNER),
            ("MODERATORS", "boss@example.com"),
        ],
    )
    .await;
    let post = |token: Option<String>, sender: &str| {
        let mut req = app
            .http
            .post(app.url("/api/messages"))
            .json(&json!({"room": "lobby", "sender": sender, "content": "hello"}));
        if let Some(token) = token {
            req = req.header("x-amzn-oidc-data", token);
        }
        req.send()
    };
    // Signed in: the post carries the identity's author.
    let alice = mint(&key, KID, SIGNER, "sub-alice", "alice");
    let res = post(Some(alice.clone()), "alice").await.unwrap();
    assert_eq!(res.status(), 201);
    let first: Value = res.json().await.unwrap();
    let author = first["author"].as_str().unwrap().to_owned();
    // The same subject is the same author on every request.
    let again: Value = post(Some(alice), "alice")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["author"], author.as_str());
    // No guests, a foreign signer, another key, a tampered token: refused.
    assert_eq!(post(None, "guest").await.unwrap().status(), 401);
    let foreign = mint(
        &key,
        KID,
        "arn:aws:elasticloadbalancing:eu-west-1:9:loadbalancer/app/x/2",
        "sub-eve",
        "eve",
    );
    assert_eq!(post(Some(foreign), "eve").await.unwrap().status(), 401);
    let other_key = SigningKey::random(&mut rand::rngs::OsRng);
    let forged = mint(&other_key, KID, SIGNER, "sub-eve", "eve");
    assert_eq!(post(Some(forged), "eve").await.unwrap().status(), 401);
    let genuine = mint(&key, KID, SIGNER, "sub-bob", "bob");
    let (head, rest) = genuine.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let claims = URL_SAFE_NO_PAD.encode(json!({"sub": "sub-alice", "name": "alice"}).to_string());
    let tampered = format!("{head}.{claims}.{signature}");
    assert_eq!(post(Some(tampered), "alice").await.unwrap().status(), 401);
    // A configured moderator is one from the first request.
    let boss = mint(&key, KID, SIGNER, "sub-boss", "boss");
    let me: Value = app
        .http
        .get(app.url("/api/session"))
        .header("x-amzn-oidc-data", boss)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["moderator"], true);
}

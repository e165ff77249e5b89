//! Sign-in through an AWS Application Load Balancer (`AUTH=alb-oidc`): the
//! load balancer runs the OIDC login itself and passes the user's claims to
//! the app in the `x-amzn-oidc-data` request header, signed with its key.
//! This module owns checking that header (format, algorithm, signer, expiry,
//! signature) and fetching and caching the load balancer's public keys, and
//! turns a valid header into an [`Identity`]. It must not believe any claim
//! before the signature holds, fetch a key for a token that another load
//! balancer signed, or log the token. It knows nothing of HTTP routes or
//! sessions: the caller reads the header and decides what a refusal means.
//!
//! The format is AWS's "user claims encoding":
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html#user-claims-encoding>.
//! It looks like a JWT but is not quite one: the load balancer encodes the
//! segments as base64url *with* `=` padding (RFC 7515 forbids padding) and
//! signs the segments as it sent them, padding included. So segments are
//! accepted padded or not, and the signature is checked over the bytes as
//! received, never over a re-encoding. Its `exp` is in the JOSE header (the
//! payload holds the IdP's user claims, whose own `exp`, if any, is not the
//! load balancer's promise and is not checked).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use p256::{
    ecdsa::{signature::Verifier as _, Signature, VerifyingKey},
    pkcs8::DecodePublicKey as _,
};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

/// Longest header value accepted: bounds the work an unauthenticated
/// request can cause. AWS refuses user claims over about 11 KB, which is
/// about 15 KiB once encoded, with the header and the signature.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Longest `kid` put into the key URL (AWS's are UUIDs, 36 characters).
const MAX_KID_LEN: usize = 128;
/// Largest key-server answer read. A P-256 public key in PEM is ~180 bytes.
const MAX_KEY_RESPONSE: usize = 8 * 1024;
/// Longest wait for a key, and for a turn to fetch one.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Keys kept, least recently used dropped first. A load balancer signs
/// with a handful of keys, and a key never changes for its `kid`.
const MAX_CACHED_KEYS: usize = 16;
/// How long a failed fetch is remembered, so a flood of tokens naming a
/// bad `kid` costs the key server one request per kid every few seconds.
const FAILURE_TTL: Duration = Duration::from_secs(5);
/// Failed kids remembered at once (attackers choose them freely).
const MAX_REMEMBERED_FAILURES: usize = 256;
/// Key fetches in flight at once; more wait for a turn (then find the key
/// cached if it was the same kid).
const MAX_CONCURRENT_FETCHES: usize = 4;

/// base64url, with or without `=` padding (AWS pads; RFC 7515 does not).
/// Strict otherwise: no other alphabet, no wrong amount of padding, no
/// stray bits in the last symbol.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which load balancer to trust and where its keys are.
#[derive(Debug, Clone)]
pub struct AlbConfig {
    /// The key URL with `{kid}` where the key id goes, e.g.
    /// `https://public-keys.auth.elb.eu-west-1.amazonaws.com/{kid}` (the
    /// load balancer's region). [`AlbConfig::for_load_balancer`] builds it.
    /// `http://` is accepted for tests; AWS's is `https://`.
    pub key_url: String,
    /// The load balancer's ARN: a token with any other `signer` is refused
    /// before any key is fetched.
    pub expected_signer: String,
    /// Clock skew tolerated on `exp`.
    pub leeway: Duration,
}

impl AlbConfig {
    /// The configuration for the load balancer with this ARN
    /// (`arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>`),
    /// with the key URL of its region in the commercial `aws` partition.
    /// For other partitions (China, GovCloud), whose key endpoints differ,
    /// fill in [`AlbConfig::key_url`] yourself.
    pub fn for_load_balancer(arn: &str, leeway: Duration) -> Result<Self, AlbConfigError> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(AlbConfigError::BadArn);
        };
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if prefix != "arn"
            || service != "elasticloadbalancing"
            || !region_ok
            || account.is_empty()
            || !account.bytes().all(|b| b.is_ascii_digit())
            || !resource.starts_with("loadbalancer/app/")
        {
            return Err(AlbConfigError::BadArn);
        }
        if partition != "aws" {
            return Err(AlbConfigError::UnknownPartition);
        }
        Ok(Self {
            key_url: format!("https://public-keys.auth.elb.{region}.amazonaws.com/{{kid}}"),
            expected_signer: arn.to_owned(),
            leeway,
        })
    }
}

/// A configuration that cannot work (found once, at startup).
#[derive(thiserror::Error, Debug)]
pub enum AlbConfigError {
    #[error("not an Application Load Balancer ARN (arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>)")]
    BadArn,
    #[error("the key URL of this AWS partition is not built in: set it explicitly")]
    UnknownPartition,
    #[error("the key URL must be http(s) and contain {{kid}} exactly once")]
    BadKeyUrl,
    #[error("the expected signer (the load balancer's ARN) is empty")]
    EmptySigner,
    #[error("cannot build the HTTP client for the key server: {0}")]
    Client(#[source] reqwest::Error),
}

/// Who the load balancer says the user is. Only `subject` is always there;
/// the rest depends on the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The IdP's `sub`: the stable, unique user id.
    pub subject: String,
    /// `name`, else `preferred_username`, if the IdP sent one (non-empty).
    pub name: Option<String>,
    /// `email`, if the IdP sent one (non-empty).
    pub email: Option<String>,
}

/// Why a header was refused. None of them carries the token.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AlbError {
    /// Not a well-formed ALB token: too long, not three segments, bad
    /// base64, not JSON objects, missing or mistyped `exp`, unsafe `kid`,
    /// a signature that is not 64 bytes, no `sub`. HTTP 401.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not `ES256`. HTTP 401.
    #[error("token algorithm is not ES256")]
    WrongAlgorithm,
    /// `signer` is not the configured load balancer. HTTP 401.
    #[error("token not signed by the configured load balancer")]
    WrongSigner,
    /// The key server does not know the `kid` (it answered 400, 403, 404
    /// or 410). HTTP 401: anyone can make up a `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The key could not be had: timeout, network error, another status,
    /// an oversized answer, or not a P-256 public key in PEM. HTTP 503.
    #[error("signing key unavailable: {0}")]
    KeyUnavailable(String),
    /// The signature does not hold for this key. HTTP 401.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` plus the leeway has passed. HTTP 401.
    #[error("token expired")]
    Expired,
}

/// Checks `x-amzn-oidc-data` headers for one load balancer. Build one at
/// startup and share it (it holds the key cache and an HTTP client).
pub struct AlbVerifier {
    config: AlbConfig,
    http: reqwest::Client,
    cache: Mutex<KeyCache>,
    fetches: Semaphore,
}

impl AlbVerifier {
    /// Fails only on a configuration that cannot work or an HTTP client
    /// that cannot be built (call it at startup).
    pub fn new(config: AlbConfig) -> Result<Self, AlbConfigError> {
        let url_ok = (config.key_url.starts_with("https://")
            || config.key_url.starts_with("http://"))
            && config.key_url.matches("{kid}").count() == 1;
        if !url_ok {
            return Err(AlbConfigError::BadKeyUrl);
        }
        if config.expected_signer.is_empty() {
            return Err(AlbConfigError::EmptySigner);
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            // The key server answers directly; a redirect is a fault.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(AlbConfigError::Client)?;
        Ok(Self {
            config,
            http,
            cache: Mutex::new(KeyCache::default()),
            fetches: Semaphore::new(MAX_CONCURRENT_FETCHES),
        })
    }

    /// The identity in an `x-amzn-oidc-data` header value, if the configured
    /// load balancer signed it and it has not expired. Every check that
    /// needs no key runs first, so a token that fails one never causes a
    /// key fetch.
    pub async fn verify(&self, header_value: &str) -> Result<Identity, AlbError> {
        let token = Token::parse(header_value, &self.config.expected_signer)?;
        if expired(token.exp, self.config.leeway, SystemTime::now()) {
            return Err(AlbError::Expired);
        }
        let key = self.key(&token.kid).await?;
        key.verify(token.signed.as_bytes(), &token.signature)
            .map_err(|_| AlbError::BadSignature)?;
        Ok(token.identity)
    }

    /// The key for `kid`: from the cache, or fetched (one turn among
    /// [`MAX_CONCURRENT_FETCHES`]) and then remembered, success or failure.
    async fn key(&self, kid: &str) -> Result<VerifyingKey, AlbError> {
        if let Some(known) = self.cache().lookup(kid, Instant::now()) {
            return known;
        }
        let _turn = match tokio::time::timeout(FETCH_TIMEOUT, self.fetches.acquire()).await {
            Ok(Ok(turn)) => turn,
            _ => {
                return Err(AlbError::KeyUnavailable(
                    "too many key fetches under way".into(),
                ))
            }
        };
        // Whoever held the turn before may have fetched this very kid.
        if let Some(known) = self.cache().lookup(kid, Instant::now()) {
            return known;
        }
        let result = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(kid))
            .await
            .unwrap_or_else(|_| Err(AlbError::KeyUnavailable("key server timed out".into())));
        match &result {
            Ok(_) => tracing::info!(kid, "fetched a load balancer signing key"),
            Err(AlbError::UnknownKey) => tracing::debug!(kid, "unknown load balancer key id"),
            Err(e) => tracing::warn!(kid, error = %e, "load balancer signing key fetch failed"),
        }
        self.cache().store(kid, &result, Instant::now());
        result
    }

    async fn fetch(&self, kid: &str) -> Result<VerifyingKey, AlbError> {
        let unavailable = |what: &str, e: reqwest::Error| {
            AlbError::KeyUnavailable(format!("{what}: {}", error_chain(&e)))
        };
        // `kid` is checked to be [A-Za-z0-9_-]+: it cannot change the path.
        let url = self.config.key_url.replace("{kid}", kid);
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable("key request failed", e))?;
        let status = response.status();
        if matches!(status.as_u16(), 400 | 403 | 404 | 410) {
            return Err(AlbError::UnknownKey);
        }
        if !status.is_success() {
            return Err(AlbError::KeyUnavailable(format!(
                "key server answered {status}"
            )));
        }
        let too_large = || AlbError::KeyUnavailable("key server answer too large".into());
        if response
            .content_length()
            .is_some_and(|len| len > MAX_KEY_RESPONSE as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable("reading the key failed", e))?
        {
            if body.len() + chunk.len() > MAX_KEY_RESPONSE {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        std::str::from_utf8(&body)
            .ok()
            .and_then(|pem| VerifyingKey::from_public_key_pem(pem.trim()).ok())
            .ok_or_else(|| AlbError::KeyUnavailable("not a P-256 public key in PEM".into()))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        // The cache holds no invariant a panic could break halfway.
        crate::sync::lock(&self.cache)
    }
}

/// A token whose form, algorithm, signer, `kid` and claims were checked;
/// its expiry and signature are left to check.
struct Token<'a> {
    /// `header.payload` exactly as received: what the signature covers.
    signed: &'a str,
    kid: String,
    exp: u64,
    signature: Signature,
    identity: Identity,
}

impl<'a> Token<'a> {
    fn parse(value: &'a str, expected_signer: &str) -> Result<Self, AlbError> {
        if value.len() > MAX_TOKEN_LEN {
            return Err(AlbError::Malformed("too long"));
        }
        let mut segments = value.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(AlbError::Malformed("not three segments"));
        };

        let header_fields = json_object(header, "header")?;
        if header_fields.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(AlbError::WrongAlgorithm);
        }
        if header_fields.get("signer").and_then(Value::as_str) != Some(expected_signer) {
            return Err(AlbError::WrongSigner);
        }
        let kid = header_fields
            .get("kid")
            .and_then(Value::as_str)
            .filter(|kid| is_safe_kid(kid))
            .ok_or(AlbError::Malformed("missing or unsafe kid"))?
            .to_owned();
        let exp = header_fields
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(AlbError::Malformed("missing or bad exp"))?;

        // JOSE form: r || s, 32 bytes each (not DER).
        let signature_bytes = BASE64URL
            .decode(signature)
            .map_err(|_| AlbError::Malformed("signature is not base64url"))?;
        if signature_bytes.len() != 64 {
            return Err(AlbError::Malformed("signature is not 64 bytes"));
        }
        // Fails for r or s zero or not below the group order.
        let signature =
            Signature::from_slice(&signature_bytes).map_err(|_| AlbError::BadSignature)?;

        let claims = json_object(payload, "payload")?;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let identity = Identity {
            subject: text("sub").ok_or(AlbError::Malformed("missing or empty sub"))?,
            name: text("name").or_else(|| text("preferred_username")),
            email: text("email"),
        };

        Ok(Self {
            signed: &value[..header.len() + 1 + payload.len()],
            kid,
            exp,
            signature,
            identity,
        })
    }
}

fn json_object(segment: &str, what: &'static str) -> Result<Map<String, Value>, AlbError> {
    let bytes = BASE64URL.decode(segment).map_err(|_| {
        AlbError::Malformed(match what {
            "header" => "header is not base64url",
            _ => "payload is not base64url",
        })
    })?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(AlbError::Malformed(match what {
            "header" => "header is not a JSON object",
            _ => "payload is not a JSON object",
        })),
    }
}

/// Safe to put into the key URL as one path segment.
fn is_safe_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7519 §4.1.4: not accepted on or after `exp` (here, plus the leeway).
fn expired(exp: u64, leeway: Duration, now: SystemTime) -> bool {
    match UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))
        .and_then(|t| t.checked_add(leeway))
    {
        Some(deadline) => now >= deadline,
        None => false,
    }
}

/// An error and its causes on one line (reqwest's own text alone says
/// little, e.g. "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Fetched keys (least recently used dropped first) and recently failed
/// kids (forgotten after [`FAILURE_TTL`]), both bounded.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, (VerifyingKey, Instant)>,
    failures: HashMap<String, (AlbError, Instant)>,
}

impl KeyCache {
    fn lookup(&mut self, kid: &str, now: Instant) -> Option<Result<VerifyingKey, AlbError>> {
        if let Some((key, used)) = self.keys.get_mut(kid) {
            *used = now;
            return Some(Ok(*key));
        }
        match self.failures.get(kid) {
            Some((error, until)) if now < *until => Some(Err(error.clone())),
            Some(_) => {
                self.failures.remove(kid);
                None
            }
            None => None,
        }
    }

    fn store(&mut self, kid: &str, result: &Result<VerifyingKey, AlbError>, now: Instant) {
        match result {
            Ok(key) => {
                if self.keys.len() >= MAX_CACHED_KEYS && !self.keys.contains_key(kid) {
                    drop_oldest(&mut self.keys, |(_, used)| *used);
                }
                self.keys.insert(kid.to_owned(), (*key, now));
                self.failures.remove(kid);
            }
            Err(error) => {
                if self.failures.len() >= MAX_REMEMBERED_FAILURES {
                    self.failures.retain(|_, (_, until)| now < *until);
                }
                if self.failures.len() >= MAX_REMEMBERED_FAILURES {
                    drop_oldest(&mut self.failures, |(_, until)| *until);
                }
                self.failures
                    .insert(kid.to_owned(), (error.clone(), now + FAILURE_TTL));
            }
        }
    }
}

fn drop_oldest<V>(map: &mut HashMap<String, V>, at: impl Fn(&V) -> Instant) {
    if let Some(oldest) = map
        .iter()
        .min_by_key(|(_, v)| at(v))
        .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::SocketAddr,
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
    };

    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use p256::{
        ecdsa::{signature::Signer as _, SigningKey},
        pkcs8::{EncodePublicKey as _, LineEnding},
    };
    use rand::rngs::OsRng;
    use serde_json::json;
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
    };

    use super::*;

    const SIGNER: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/chat/50dc6c495c0c9188";
    const KID: &str = "8d1f0c4e-2b6a-4a4b-9c1e-0f3b8e6d2a71";
    const LEEWAY: Duration = Duration::from_secs(30);

    /// A key server on 127.0.0.1 like AWS's: `GET /<kid>` answers the PEM
    /// public key, or 404. A few kids misbehave on purpose.
    struct KeyServer {
        addr: SocketAddr,
        requests: Arc<AtomicUsize>,
        keys: Arc<Mutex<HashMap<String, String>>>,
    }

    impl KeyServer {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let requests = Arc::new(AtomicUsize::new(0));
            let keys = Arc::new(Mutex::new(HashMap::<String, String>::new()));
            let (count, served) = (requests.clone(), keys.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (count, served) = (count.clone(), served.clone());
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let request = String::from_utf8_lossy(&request);
                        let path = request.split(' ').nth(1).unwrap_or("").to_owned();
                        let kid = path.strip_prefix('/').unwrap_or("");
                        let key = served.lock().unwrap().get(kid).cloned();
                        let response = match (kid, key) {
                            (_, Some(pem)) => ok_response(&pem),
                            ("slow", _) => {
                                tokio::time::sleep(Duration::from_secs(10)).await;
                                return;
                            }
                            ("huge", _) => format!(
                                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",
                                "A".repeat(100_000)
                            ),
                            ("huge-declared", _) => ok_response(&"A".repeat(100_000)),
                            ("garbage", _) => ok_response("-----BEGIN PUBLIC KEY-----\nnope\n"),
                            ("broken", _) => "HTTP/1.1 500 Internal Server Error\r\n\
                                 Content-Length: 0\r\nConnection: close\r\n\r\n"
                                .to_owned(),
                            ("moved", _) => "HTTP/1.1 302 Found\r\nLocation: /other\r\n\
                                 Content-Length: 0\r\nConnection: close\r\n\r\n"
                                .to_owned(),
                            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\
                                 Connection: close\r\n\r\n"
                                .to_owned(),
                        };
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
            Self {
                addr,
                requests,
                keys,
            }
        }

        fn serve(&self, kid: &str, key: &SigningKey) {
            let pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            self.keys.lock().unwrap().insert(kid.to_owned(), pem);
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }

        fn verifier(&self) -> AlbVerifier {
            AlbVerifier::new(AlbConfig {
                key_url: format!("http://{}/{{kid}}", self.addr),
                expected_signer: SIGNER.to_owned(),
                leeway: LEEWAY,
            })
            .unwrap()
        }
    }

    fn ok_response(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// The JOSE header the load balancer sends.
    fn alb_header(kid: &str) -> Value {
        json!({
            "typ": "JWT",
            "kid": kid,
            "alg": "ES256",
            "iss": "https://idp.example.com",
            "client": "4fmvht22tjrgd7d3k3tghttct7",
            "signer": SIGNER,
            "exp": now() + 120,
        })
    }

    fn claims() -> Value {
        json!({
            "sub": "23d498b2-3031-70d2-8a15-49dd886a087b",
            "name": "Alice Example",
            "email": "alice@example.com",
            "email_verified": "true",
            "exp": now() + 3600,
            "iss": "https://idp.example.com",
        })
    }

    fn encode(bytes: &[u8], padded: bool) -> String {
        if padded {
            URL_SAFE.encode(bytes)
        } else {
            URL_SAFE_NO_PAD.encode(bytes)
        }
    }

    /// Signs as the load balancer does: ES256 over `header.payload` as
    /// encoded, signature as r || s.
    fn mint_raw(key: &SigningKey, header: &[u8], payload: &[u8], padded: bool) -> String {
        let signed = format!("{}.{}", encode(header, padded), encode(payload, padded));
        let signature: Signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", encode(&signature.to_bytes(), padded))
    }

    fn mint(key: &SigningKey, header: &Value, claims: &Value) -> String {
        mint_raw(
            key,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            false,
        )
    }

    fn new_key() -> SigningKey {
        SigningKey::random(&mut OsRng)
    }

    async fn setup() -> (KeyServer, SigningKey, AlbVerifier) {
        let server = KeyServer::start().await;
        let key = new_key();
        server.serve(KID, &key);
        let verifier = server.verifier();
        (server, key, verifier)
    }

    #[tokio::test]
    async fn a_valid_token_gives_the_identity() {
        let (server, key, verifier) = setup().await;
        let token = mint(&key, &alb_header(KID), &claims());
        assert_eq!(
            verifier.verify(&token).await,
            Ok(Identity {
                subject: "23d498b2-3031-70d2-8a15-49dd886a087b".into(),
                name: Some("Alice Example".into()),
                email: Some("alice@example.com".into()),
            })
        );
        assert_eq!(server.requests(), 1);

        // Only `sub` is required; `preferred_username` stands in for `name`.
        let token = mint(
            &key,
            &alb_header(KID),
            &json!({"sub": "u-2", "preferred_username": "bob", "name": ""}),
        );
        assert_eq!(
            verifier.verify(&token).await,
            Ok(Identity {
                subject: "u-2".into(),
                name: Some("bob".into()),
                email: None,
            })
        );
        let token = mint(&key, &alb_header(KID), &json!({"sub": "u-3", "email": 7}));
        assert_eq!(
            verifier.verify(&token).await.unwrap(),
            Identity {
                subject: "u-3".into(),
                name: None,
                email: None,
            }
        );

        // A PEM with CRLF line ends works too.
        let crlf_key = new_key();
        let pem = crlf_key
            .verifying_key()
            .to_public_key_pem(LineEnding::CRLF)
            .unwrap();
        server.keys.lock().unwrap().insert("crlf".into(), pem);
        let token = mint(&crlf_key, &alb_header("crlf"), &json!({"sub": "u-3"}));
        assert_eq!(
            verifier.verify(&token).await.unwrap(),
            Identity {
                subject: "u-3".into(),
                name: None,
                email: None,
            }
        );
    }

    #[tokio::test]
    async fn padded_segments_are_accepted_and_checked_as_sent() {
        let (_server, key, verifier) = setup().await;
        // Pick a header and claims whose encodings need padding (the
        // 64-byte signature always does).
        let mut header = alb_header(KID);
        let mut claims = claims();
        for n in 0.. {
            header["client"] = json!("c".repeat(n));
            if !header.to_string().len().is_multiple_of(3) {
                break;
            }
        }
        for n in 0.. {
            claims["name"] = json!(format!("Alice{}", "!".repeat(n)));
            if !claims.to_string().len().is_multiple_of(3) {
                break;
            }
        }
        let token = mint_raw(
            &key,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            true,
        );
        let segments: Vec<&str> = token.split('.').collect();
        assert!(segments.iter().all(|s| s.ends_with('=')), "{segments:?}");
        assert_eq!(
            verifier.verify(&token).await.unwrap().subject,
            "23d498b2-3031-70d2-8a15-49dd886a087b"
        );

        // The signature covers the padding: the same token re-encoded
        // without it no longer verifies.
        let stripped = segments
            .iter()
            .map(|s| s.trim_end_matches('='))
            .collect::<Vec<_>>()
            .join(".");
        assert_eq!(
            verifier.verify(&stripped).await,
            Err(AlbError::BadSignature)
        );

        // Wrong amounts of padding are not base64url.
        let extra = format!("{}=.{}.{}", segments[0], segments[1], segments[2]);
        assert!(matches!(
            verifier.verify(&extra).await,
            Err(AlbError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn another_signer_is_refused_without_a_key_fetch() {
        let (server, key, verifier) = setup().await;
        let mut header = alb_header(KID);
        for signer in [
            json!("arn:aws:elasticloadbalancing:eu-west-1:999999999999:loadbalancer/app/evil/1"),
            json!(format!("{SIGNER} ")),
            json!(""),
            json!(null),
            json!(["x"]),
        ] {
            header["signer"] = signer;
            let token = mint(&key, &header, &claims());
            assert_eq!(verifier.verify(&token).await, Err(AlbError::WrongSigner));
        }
        header.as_object_mut().unwrap().remove("signer");
        let token = mint(&key, &header, &claims());
        assert_eq!(verifier.verify(&token).await, Err(AlbError::WrongSigner));
        assert_eq!(server.requests(), 0);
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_is_refused() {
        let (server, _key, verifier) = setup().await;
        let token = mint(&new_key(), &alb_header(KID), &claims());
        assert_eq!(verifier.verify(&token).await, Err(AlbError::BadSignature));
        assert_eq!(server.requests(), 1);
    }

    #[tokio::test]
    async fn a_tampered_token_is_refused() {
        let (_server, key, verifier) = setup().await;
        let token = mint(&key, &alb_header(KID), &claims());
        let segments: Vec<&str> = token.split('.').collect();

        let mut evil = claims();
        evil["sub"] = json!("admin");
        let forged_payload = URL_SAFE_NO_PAD.encode(evil.to_string());
        let tampered = format!("{}.{forged_payload}.{}", segments[0], segments[2]);
        assert_eq!(
            verifier.verify(&tampered).await,
            Err(AlbError::BadSignature)
        );

        // A later expiry in the header is tampering too.
        let mut header = alb_header(KID);
        header["exp"] = json!(now() + 999_999);
        let forged_header = URL_SAFE_NO_PAD.encode(header.to_string());
        let tampered = format!("{forged_header}.{}.{}", segments[1], segments[2]);
        assert_eq!(
            verifier.verify(&tampered).await,
            Err(AlbError::BadSignature)
        );

        // One flipped bit in the signature.
        let mut signature = URL_SAFE_NO_PAD.decode(segments[2]).unwrap();
        signature[40] ^= 1;
        let tampered = format!(
            "{}.{}.{}",
            segments[0],
            segments[1],
            URL_SAFE_NO_PAD.encode(signature)
        );
        assert_eq!(
            verifier.verify(&tampered).await,
            Err(AlbError::BadSignature)
        );

        // The untouched token still passes.
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_der_signature_is_refused() {
        let (server, key, verifier) = setup().await;
        let token = mint(&key, &alb_header(KID), &claims());
        let (signed, _) = token.rsplit_once('.').unwrap();
        let signature: Signature = key.sign(signed.as_bytes());
        let der = URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes());
        assert_eq!(
            verifier.verify(&format!("{signed}.{der}")).await,
            Err(AlbError::Malformed("signature is not 64 bytes"))
        );
        assert_eq!(server.requests(), 0);
    }

    #[tokio::test]
    async fn expiry_is_checked_with_the_leeway() {
        let (server, key, verifier) = setup().await;
        let mut header = alb_header(KID);

        header["exp"] = json!(now() - 10); // within the 30 s leeway
        assert!(verifier
            .verify(&mint(&key, &header, &claims()))
            .await
            .is_ok());

        header["exp"] = json!(now() - 31);
        let expired = mint(&key, &header, &claims());
        assert_eq!(verifier.verify(&expired).await, Err(AlbError::Expired));

        header["exp"] = json!(0);
        let ancient = mint(&key, &header, &claims());
        assert_eq!(verifier.verify(&ancient).await, Err(AlbError::Expired));
        assert_eq!(server.requests(), 1);

        for bad in [json!(-5), json!("9999999999"), json!(1.5e10), json!(null)] {
            header["exp"] = bad;
            let token = mint(&key, &header, &claims());
            assert_eq!(
                verifier.verify(&token).await,
                Err(AlbError::Malformed("missing or bad exp"))
            );
        }
        header.as_object_mut().unwrap().remove("exp");
        let token = mint(&key, &header, &claims());
        assert_eq!(
            verifier.verify(&token).await,
            Err(AlbError::Malformed("missing or bad exp"))
        );
    }

    #[test]
    fn expiry_edges() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert!(!expired(100, Duration::ZERO, at(99)));
        assert!(expired(100, Duration::ZERO, at(100)));
        assert!(!expired(100, Duration::from_secs(5), at(104)));
        assert!(expired(100, Duration::from_secs(5), at(105)));
        assert!(!expired(u64::MAX, Duration::from_secs(5), at(105)));
    }

    #[tokio::test]
    async fn other_algorithms_are_refused_without_a_key_fetch() {
        let (server, key, verifier) = setup().await;
        let mut header = alb_header(KID);
        for alg in [
            json!("HS256"),
            json!("none"),
            json!("ES384"),
            json!("RS256"),
            json!("es256"),
            json!(null),
        ] {
            header["alg"] = alg;
            let token = mint(&key, &header, &claims());
            assert_eq!(verifier.verify(&token).await, Err(AlbError::WrongAlgorithm));
        }
        // The classic unsigned token: empty signature segment.
        header["alg"] = json!("none");
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert_eq!(
            verifier.verify(&format!("{h}.{p}.")).await,
            Err(AlbError::WrongAlgorithm)
        );
        header["alg"] = json!("ES256");
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        assert_eq!(
            verifier.verify(&format!("{h}.{p}.")).await,
            Err(AlbError::Malformed("signature is not 64 bytes"))
        );
        assert_eq!(server.requests(), 0);
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_without_a_key_fetch() {
        let (server, key, verifier) = setup().await;
        let good = mint(&key, &alb_header(KID), &claims());
        let segments: Vec<&str> = good.split('.').collect();
        let (h, p, s) = (segments[0], segments[1], segments[2]);
        let b64 = |text: &str| URL_SAFE_NO_PAD.encode(text);

        let cases: Vec<(String, &str)> = vec![
            (String::new(), "not three segments"),
            ("abc".into(), "not three segments"),
            (format!("{h}.{p}"), "not three segments"),
            (format!("{h}.{p}.{s}.{s}"), "not three segments"),
            (format!("{h}.{p}.{s}."), "not three segments"),
            (format!("{h}..{p}.{s}"), "not three segments"),
            (format!("!!.{p}.{s}"), "header is not base64url"),
            (format!("{h}x.{p}.{s}"), "header is not base64url"),
            (format!(" {h}.{p}.{s}"), "header is not base64url"),
            (
                format!("{}+.{p}.{s}", &h[..h.len() - 1]),
                "header is not base64url",
            ),
            (format!(".{p}.{s}"), "header is not a JSON object"),
            (
                format!("{}.{p}.{s}", b64("not json")),
                "header is not a JSON object",
            ),
            (
                format!("{}.{p}.{s}", b64("[1,2]")),
                "header is not a JSON object",
            ),
            (
                format!("{}.{p}.{s}", b64("\"ES256\"")),
                "header is not a JSON object",
            ),
            (format!("{h}.{p}.{s}\n"), "signature is not base64url"),
            (
                format!("{h}.{p}.{}", &s[..s.len() - 2]),
                "signature is not 64 bytes",
            ),
            (
                format!("{h}.{p}.{}", b64(&"x".repeat(65))),
                "signature is not 64 bytes",
            ),
            (format!("{h}.%%.{s}"), "payload is not base64url"),
            (
                format!("{h}.{}.{s}", b64("{")),
                "payload is not a JSON object",
            ),
            (
                format!("{h}.{}.{s}", b64("null")),
                "payload is not a JSON object",
            ),
            (
                format!("{h}.{p}.{s}{}", "A".repeat(MAX_TOKEN_LEN)),
                "too long",
            ),
        ];
        for (token, why) in &cases {
            assert_eq!(
                verifier.verify(token).await,
                Err(AlbError::Malformed(why)),
                "{token:.80}"
            );
        }

        // A huge but otherwise well-formed token.
        let mut big = claims();
        big["name"] = json!("n".repeat(MAX_TOKEN_LEN));
        let token = mint(&key, &alb_header(KID), &big);
        assert_eq!(
            verifier.verify(&token).await,
            Err(AlbError::Malformed("too long"))
        );

        // Signed, but without a usable `sub`.
        for claims in [
            json!({"name": "x"}),
            json!({"sub": ""}),
            json!({"sub": 42}),
            json!({"sub": null}),
        ] {
            let token = mint(&key, &alb_header(KID), &claims);
            assert_eq!(
                verifier.verify(&token).await,
                Err(AlbError::Malformed("missing or empty sub"))
            );
        }

        // r = 0 cannot be a signature.
        let zero = URL_SAFE_NO_PAD.encode([0u8; 64]);
        assert_eq!(
            verifier.verify(&format!("{h}.{p}.{zero}")).await,
            Err(AlbError::BadSignature)
        );
        assert_eq!(server.requests(), 0);
    }

    #[tokio::test]
    async fn an_unsafe_kid_is_refused_without_a_key_fetch() {
        let (server, key, verifier) = setup().await;
        let mut header = alb_header(KID);
        for kid in [
            json!("../x"),
            json!("a/b"),
            json!("/etc/passwd"),
            json!(""),
            json!("a b"),
            json!("a?b"),
            json!("a#b"),
            json!("%2e%2e"),
            json!("a.b"),
            json!("k\u{e9}y"),
            json!("x".repeat(MAX_KID_LEN + 1)),
            json!(12),
            json!(null),
        ] {
            header["kid"] = kid;
            let token = mint(&key, &header, &claims());
            assert_eq!(
                verifier.verify(&token).await,
                Err(AlbError::Malformed("missing or unsafe kid"))
            );
        }
        assert_eq!(server.requests(), 0);
        assert!(is_safe_kid(&"x".repeat(MAX_KID_LEN)));
        assert!(is_safe_kid("Ab9_-"));
    }

    #[tokio::test]
    async fn an_unknown_kid_is_refused_and_remembered_briefly() {
        let (server, key, verifier) = setup().await;
        let token = mint(&key, &alb_header("no-such-kid"), &claims());
        assert_eq!(verifier.verify(&token).await, Err(AlbError::UnknownKey));
        assert_eq!(server.requests(), 1);
        // A flood of the same bad kid does not reach the key server.
        for _ in 0..20 {
            assert_eq!(verifier.verify(&token).await, Err(AlbError::UnknownKey));
        }
        assert_eq!(server.requests(), 1);
        // The known kid is unaffected.
        assert!(verifier
            .verify(&mint(&key, &alb_header(KID), &claims()))
            .await
            .is_ok());
        assert_eq!(server.requests(), 2);
    }

    #[test]
    fn a_failure_is_forgotten_after_a_few_seconds() {
        let mut cache = KeyCache::default();
        let start = Instant::now();
        cache.store("k", &Err(AlbError::UnknownKey), start);
        assert_eq!(cache.lookup("k", start), Some(Err(AlbError::UnknownKey)));
        assert_eq!(
            cache.lookup("k", start + FAILURE_TTL - Duration::from_millis(1)),
            Some(Err(AlbError::UnknownKey))
        );
        assert_eq!(cache.lookup("k", start + FAILURE_TTL), None);
        assert!(cache.failures.is_empty());

        // Then a success replaces it for good.
        let key = *new_key().verifying_key();
        cache.store("k", &Err(AlbError::UnknownKey), start);
        cache.store("k", &Ok(key), start);
        assert_eq!(cache.lookup("k", start), Some(Ok(key)));
        assert!(cache.failures.is_empty());
    }

    #[tokio::test]
    async fn the_key_is_fetched_once_then_cached() {
        let (server, key, verifier) = setup().await;
        for i in 0..10 {
            let token = mint(&key, &alb_header(KID), &json!({"sub": format!("user-{i}")}));
            assert_eq!(
                verifier.verify(&token).await.unwrap().subject,
                format!("user-{i}")
            );
        }
        assert_eq!(server.requests(), 1);
    }

    #[tokio::test]
    async fn concurrent_first_requests_fetch_the_key_a_few_times_at_most() {
        let (server, key, verifier) = setup().await;
        let verifier = Arc::new(verifier);
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let token = mint(&key, &alb_header(KID), &json!({"sub": format!("u{i}")}));
                let verifier = verifier.clone();
                tokio::spawn(async move { verifier.verify(&token).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_ok());
        }
        let fetches = server.requests();
        assert!(
            (1..=MAX_CONCURRENT_FETCHES).contains(&fetches),
            "{fetches} fetches"
        );
    }

    #[tokio::test]
    async fn the_key_cache_is_bounded_and_keeps_what_is_used() {
        let (server, key, verifier) = setup().await;
        let main = mint(&key, &alb_header(KID), &claims());
        assert!(verifier.verify(&main).await.is_ok());
        for i in 0..40 {
            let kid = format!("other-{i}");
            let other = new_key();
            server.serve(&kid, &other);
            let token = mint(&other, &alb_header(&kid), &claims());
            assert!(verifier.verify(&token).await.is_ok());
            // The kid in steady use stays cached.
            assert!(verifier.verify(&main).await.is_ok());
            assert!(verifier.cache().keys.len() <= MAX_CACHED_KEYS);
        }
        assert_eq!(server.requests(), 41);
        assert_eq!(verifier.cache().keys.len(), MAX_CACHED_KEYS);
    }

    #[test]
    fn remembered_failures_are_bounded() {
        let mut cache = KeyCache::default();
        let now = Instant::now();
        for i in 0..(MAX_REMEMBERED_FAILURES * 3) {
            cache.store(&format!("bad-{i}"), &Err(AlbError::UnknownKey), now);
            assert!(cache.failures.len() <= MAX_REMEMBERED_FAILURES);
        }
    }

    #[tokio::test]
    async fn a_key_server_that_misbehaves_gives_key_unavailable() {
        let (server, key, verifier) = setup().await;
        for kid in ["huge", "huge-declared", "garbage", "broken", "moved"] {
            let token = mint(&key, &alb_header(kid), &claims());
            let result = verifier.verify(&token).await;
            assert!(
                matches!(result, Err(AlbError::KeyUnavailable(_))),
                "{kid}: {result:?}"
            );
        }
        assert_eq!(server.requests(), 5);

        // A well-formed public key of another type (Ed25519) is refused.
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(&[7u8; 32]);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        server.keys.lock().unwrap().insert("ed25519".into(), pem);
        let token = mint(&key, &alb_header("ed25519"), &claims());
        assert_eq!(
            verifier.verify(&token).await,
            Err(AlbError::KeyUnavailable(
                "not a P-256 public key in PEM".into()
            ))
        );
    }

    #[tokio::test]
    async fn a_key_server_that_hangs_times_out() {
        let (_server, key, verifier) = setup().await;
        let token = mint(&key, &alb_header("slow"), &claims());
        let started = Instant::now();
        let result = verifier.verify(&token).await;
        assert!(
            matches!(result, Err(AlbError::KeyUnavailable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < FETCH_TIMEOUT + Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_key_server_that_is_down_gives_key_unavailable() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let verifier = AlbVerifier::new(AlbConfig {
            key_url: format!("http://{addr}/{{kid}}"),
            expected_signer: SIGNER.into(),
            leeway: LEEWAY,
        })
        .unwrap();
        let token = mint(&new_key(), &alb_header(KID), &claims());
        let result = verifier.verify(&token).await;
        assert!(
            matches!(result, Err(AlbError::KeyUnavailable(_))),
            "{result:?}"
        );
    }

    #[test]
    fn a_high_s_signature_is_accepted() {
        // AWS does not promise low-S signatures; both forms are valid ECDSA.
        let key = new_key();
        let message = b"header.payload";
        let signature: Signature = key.sign(message);
        let (r, s) = signature.split_scalars();
        let flipped = Signature::from_scalars(r, -*s).unwrap();
        assert_ne!(flipped, signature);
        assert!(key.verifying_key().verify(message, &signature).is_ok());
        assert!(key.verifying_key().verify(message, &flipped).is_ok());
    }

    #[test]
    fn config_for_a_load_balancer_arn() {
        let config = AlbConfig::for_load_balancer(SIGNER, LEEWAY).unwrap();
        assert_eq!(
            config.key_url,
            "https://public-keys.auth.elb.eu-west-1.amazonaws.com/{kid}"
        );
        assert_eq!(config.expected_signer, SIGNER);
        assert!(AlbVerifier::new(config).is_ok());

        for bad in [
            "",
            "chat",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012",
            "arn:aws:s3:eu-west-1:123456789012:loadbalancer/app/chat/1",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/chat/1",
            "arn:aws:elasticloadbalancing:evil.com/x:123456789012:loadbalancer/app/chat/1",
            "arn:aws:elasticloadbalancing::123456789012:loadbalancer/app/chat/1",
            "arn:aws:elasticloadbalancing:eu-west-1:12x:loadbalancer/app/chat/1",
        ] {
            assert!(
                matches!(
                    AlbConfig::for_load_balancer(bad, LEEWAY),
                    Err(AlbConfigError::BadArn)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            AlbConfig::for_load_balancer(
                "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:loadbalancer/app/chat/1",
                LEEWAY
            ),
            Err(AlbConfigError::UnknownPartition)
        ));
    }

    #[test]
    fn a_config_that_cannot_work_is_refused() {
        let config = |key_url: &str, signer: &str| AlbConfig {
            key_url: key_url.into(),
            expected_signer: signer.into(),
            leeway: LEEWAY,
        };
        for url in [
            "https://keys.example.com/",
            "https://keys.example.com/{kid}/{kid}",
            "ftp://keys.example.com/{kid}",
            "{kid}",
        ] {
            assert!(matches!(
                AlbVerifier::new(config(url, SIGNER)),
                Err(AlbConfigError::BadKeyUrl)
            ));
        }
        assert!(matches!(
            AlbVerifier::new(config("https://k.example.com/{kid}", "")),
            Err(AlbConfigError::EmptySigner)
        ));
    }
}

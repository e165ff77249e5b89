//! First-load transfer: the room page and every asset it references, with
//! the bytes as transferred (compressed bodies; headers not counted).

use crate::{cli::FirstLoadArgs, net};

/// One fetched file.
#[derive(Debug)]
struct Fetched {
    path: String,
    status: Option<u16>,
    encoding: String,
    cache_control: String,
    content_type: String,
    bytes: u64,
    error: Option<String>,
}

impl Fetched {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.error.is_none()
    }
}

pub async fn first_load_mode(a: &FirstLoadArgs) -> u8 {
    let base = a.target.urls().remove(0);
    let page = format!("/r/{}", a.room);
    println!(
        "loadtest first-load url={base} page={page} accept-encoding={:?} budget={} KB",
        a.accept_encoding, a.budget_kb
    );
    // Never decode bodies, even if another crate turns reqwest's decoders
    // on: the sizes are meant as on the wire.
    let http = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .build()
        .map_err(|e| format!("http client: {e}"))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return 2;
        }
    };
    // The HTML to parse, uncompressed (not counted): the tool has no decoders.
    let html = match http.get(format!("{base}{page}")).send().await {
        Ok(r) if r.status().is_success() => {
            if r.headers().contains_key(reqwest::header::CONTENT_ENCODING) {
                eprintln!(
                    "loadtest: {page} came compressed without Accept-Encoding; cannot parse it"
                );
                return 2;
            }
            match r.text().await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("loadtest: {page}: {}", net::request_error(&e));
                    return 2;
                }
            }
        }
        Ok(r) => {
            eprintln!("loadtest: {page}: {}", net::status_text(r.status()));
            net::rate_limit_notice();
            return 2;
        }
        Err(e) => {
            eprintln!(
                "loadtest: {base} does not answer: {}",
                net::request_error(&e)
            );
            return 2;
        }
    };
    let refs = extract_assets(&html);
    let mut files = vec![fetch(&http, &base, &page, &a.accept_encoding).await];
    let mut external = Vec::new();
    for r in &refs {
        match same_origin_path(r, &base, &page) {
            Some(path) if !files.iter().any(|f| f.path == path) => {
                files.push(fetch(&http, &base, &path, &a.accept_encoding).await)
            }
            Some(_) => {}
            None => external.push(r.clone()),
        }
    }
    // The WASM: referenced by the HTML, or next to the .js (possibly `_bg`).
    let mut missing_wasm = false;
    if !files.iter().any(|f| is_wasm(&f.path)) {
        let js: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        let candidates = wasm_candidates(&js);
        let mut found = false;
        for c in &candidates {
            let f = fetch(&http, &base, c, &a.accept_encoding).await;
            if f.ok() {
                files.push(f);
                found = true;
                break;
            }
        }
        if !found {
            missing_wasm = true;
            println!(
                "wasm        not found (the HTML names none; tried {})",
                if candidates.is_empty() {
                    "nothing: no /pkg/*.js either".to_string()
                } else {
                    candidates.join(", ")
                }
            );
        }
    }

    println!(
        "{:<44} {:>6}  {:<8}  {:<34}  {:>10}",
        "file", "status", "encoding", "cache-control", "bytes"
    );
    for f in &files {
        println!(
            "{:<44} {:>6}  {:<8}  {:<34}  {:>10}{}",
            f.path,
            f.status.map_or("-".into(), |s| s.to_string()),
            f.encoding,
            f.cache_control,
            f.bytes,
            f.error
                .as_ref()
                .map_or(String::new(), |e| format!("  ({e})"))
        );
    }
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    let kb = total as f64 / 1000.0;
    println!(
        "total       {total} bytes = {kb:.1} KB in {} files (budget {} KB; bodies as transferred, headers not counted)",
        files.len(),
        a.budget_kb
    );
    for e in &external {
        println!("note        not fetched (another origin): {e}");
    }
    for f in files.iter().filter(|f| f.ok()) {
        let textual = ["text/", "javascript", "wasm", "json", "svg"]
            .iter()
            .any(|t| f.content_type.contains(t));
        if textual && f.encoding == "identity" && f.bytes > 1024 {
            println!(
                "note        {} is not compressed ({})",
                f.path, f.content_type
            );
        }
    }
    let failed: Vec<&Fetched> = files.iter().filter(|f| !f.ok()).collect();
    for f in &failed {
        println!(
            "missing     {}: {}",
            f.path,
            f.error
                .clone()
                .or_else(|| f.status.map(|s| format!("HTTP {s}")))
                .unwrap_or_default()
        );
    }
    let over = kb > a.budget_kb;
    if over {
        println!(
            "budget      {kb:.1} KB is over the {} KB budget by {:.1} KB",
            a.budget_kb,
            kb - a.budget_kb
        );
    }
    let pass = !over && failed.is_empty() && !missing_wasm;
    println!(
        "SUMMARY mode=first-load files={} total_bytes={total} total_kb={kb:.1} budget_kb={} missing={} result={}",
        files.len(),
        a.budget_kb,
        failed.len() + usize::from(missing_wasm),
        if pass { "PASS" } else { "FAIL" }
    );
    net::rate_limit_notice();
    u8::from(!pass)
}

async fn fetch(http: &reqwest::Client, base: &str, path: &str, accept: &str) -> Fetched {
    let mut f = Fetched {
        path: path.to_owned(),
        status: None,
        encoding: "-".into(),
        cache_control: "-".into(),
        content_type: String::new(),
        bytes: 0,
        error: None,
    };
    let resp = http
        .get(format!("{base}{path}"))
        .header(reqwest::header::ACCEPT_ENCODING, accept)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            f.error = Some(net::request_error(&e));
            return f;
        }
    };
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    f.status = Some(resp.status().as_u16());
    if resp.status().as_u16() == 429 {
        f.error = Some(net::status_text(resp.status()));
    }
    f.encoding = header(reqwest::header::CONTENT_ENCODING).unwrap_or_else(|| "identity".into());
    f.cache_control = header(reqwest::header::CACHE_CONTROL).unwrap_or_else(|| "-".into());
    f.content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    // No decompression features in reqwest: these are the bytes on the wire.
    match resp.bytes().await {
        Ok(b) => f.bytes = b.len() as u64,
        Err(e) => f.error = Some(net::request_error(&e)),
    }
    f
}

fn is_wasm(path: &str) -> bool {
    path.split(['?', '#'])
        .next()
        .unwrap_or("")
        .ends_with(".wasm")
}

/// The path on this server of a reference found in the page at `page`;
/// `None` for another origin (or a non-http scheme).
fn same_origin_path(r: &str, base: &str, page: &str) -> Option<String> {
    if let Some(rest) = r.strip_prefix(base) {
        return rest.starts_with('/').then(|| rest.to_owned());
    }
    if r.starts_with("//") || r.contains("://") || r.starts_with("data:") {
        return None;
    }
    if r.starts_with('/') {
        return Some(r.to_owned());
    }
    // Relative to the page's directory.
    let dir = &page[..page.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{dir}{r}"))
}

/// References a browser fetches on first load: stylesheets,
/// modulepreload/preload links, script `src`s, and asset paths named in
/// inline scripts (e.g. `import('/pkg/chat.js')`, the `.wasm` passed to
/// `init`). In document order, without duplicates.
pub fn extract_assets(html: &str) -> Vec<String> {
    let html = strip_comments(html);
    let mut out: Vec<String> = Vec::new();
    let mut push = |v: String| {
        if !v.is_empty() && !out.contains(&v) {
            out.push(v);
        }
    };
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while let Some(off) = lower[i..].find('<') {
        let start = i + off;
        let rest = &lower[start + 1..];
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        let Some(end) = tag_end(&html, start) else {
            break;
        };
        let attrs = parse_attrs(&html[start + 1 + name_len..end]);
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match name {
            "link" => {
                let rel = get("rel").unwrap_or_default().to_ascii_lowercase();
                let wanted = rel
                    .split_ascii_whitespace()
                    .any(|r| matches!(r, "stylesheet" | "modulepreload" | "preload"));
                if wanted {
                    if let Some(href) = get("href") {
                        push(href);
                    }
                }
                i = end + 1;
            }
            "script" => {
                if let Some(src) = get("src") {
                    push(src);
                }
                // Inline script: asset paths in its string literals.
                let body_start = end + 1;
                let body_end = lower[body_start..]
                    .find("</script")
                    .map_or(html.len(), |e| body_start + e);
                for p in quoted_asset_paths(&html[body_start..body_end]) {
                    push(p);
                }
                i = body_end;
            }
            _ => i = end + 1,
        }
    }
    out
}

/// Where the WASM would be when the HTML names none: `/pkg/<name>.wasm` next
/// to each `/pkg/<name>.js` (also `<name>_bg.wasm`, wasm-bindgen's name).
pub fn wasm_candidates(paths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.split(['?', '#']).next().unwrap_or("");
        if let Some(stem) = p.strip_suffix(".js").or_else(|| p.strip_suffix(".mjs")) {
            if p.contains("/pkg/") {
                for c in [format!("{stem}.wasm"), format!("{stem}_bg.wasm")] {
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

fn strip_comments(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start + 4..].find("-->") {
            Some(end) => rest = &rest[start + 4 + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Index of the `>` closing the tag that starts at `start` (quotes respected).
fn tag_end(html: &str, start: usize) -> Option<usize> {
    let mut quote = None;
    for (i, c) in html[start..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(start + i),
            _ => {}
        }
    }
    None
}

/// `name="v" name='v' name=v name` -> lowercase names, unescaped values.
fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let n0 = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if n0 == i {
            i += 1;
            continue;
        }
        let name = s[n0..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let v0 = i + 1;
                i = v0;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = s[v0..i.min(b.len())].to_owned();
                i += 1;
            } else {
                let v0 = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = s[v0..i].to_owned();
            }
        }
        out.push((name, unescape(&value)));
    }
    out
}

fn unescape(v: &str) -> String {
    v.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// String literals in script text that look like asset paths
/// (`"/pkg/x.js"`, `'/pkg/x.wasm'`, `` `/pkg/x.css` ``).
fn quoted_asset_paths(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = script.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'"' | b'\'' | b'`') {
            let q = b[i];
            let s0 = i + 1;
            let mut j = s0;
            while j < b.len() && b[j] != q && b[j] != b'\n' {
                j += 1;
            }
            let lit = &script[s0..j.min(b.len())];
            let path = lit.split(['?', '#']).next().unwrap_or("");
            let asset = [".js", ".mjs", ".wasm", ".css"]
                .iter()
                .any(|e| path.ends_with(e));
            if asset
                && !lit.contains(char::is_whitespace)
                && (lit.starts_with('/') || lit.starts_with("./"))
            {
                out.push(lit.to_owned());
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the page Leptos renders (HydrationScripts, cargo-leptos).
    const PAGE: &str = r#"<!DOCTYPE html><html lang="en"><head>
<meta charset="utf-8"/><title>lobby</title>
<link rel="modulepreload" href="/pkg/chat.js" crossorigin="">
<link rel="preload" href="/pkg/chat.wasm" as="fetch" type="application/wasm" crossorigin="">
<script type="module">function idle(c){if("requestIdleCallback" in window){window.requestIdleCallback(c);}else{c();}}
idle(() => { import('/pkg/chat.js').then(mod => { mod.default({module_or_path: '/pkg/chat.wasm'}).then(() => { mod.hydrate(); }); }) });</script>
<link id="leptos" rel="stylesheet" href="/pkg/chat.css">
<LINK REL=icon HREF=/favicon.ico>
<!-- <link rel="stylesheet" href="/pkg/old.css"> -->
<script src="/pkg/extra.js?v=2" defer></script>
<link rel="stylesheet" href="https://cdn.example/x.css">
</head><body><p>a > b "quoted" '/pkg/not-in-script.js'</p></body></html>"#;

    #[test]
    fn finds_every_first_load_asset_in_order() {
        assert_eq!(
            extract_assets(PAGE),
            [
                "/pkg/chat.js",
                "/pkg/chat.wasm",
                "/pkg/chat.css",
                "/pkg/extra.js?v=2",
                "https://cdn.example/x.css",
            ]
        );
    }

    #[test]
    fn hashed_names_and_odd_markup() {
        let html = r#"<link href='/pkg/chat.3f9a.css' rel='stylesheet preload'/>
<script type=module>import init from "/pkg/chat.ab12cd.js"; init("/pkg/chat.ab12cd.wasm")</script>
<link rel="alternate" href="/feed.xml"><link rel="stylesheet" href="/a&amp;b.css">"#;
        assert_eq!(
            extract_assets(html),
            [
                "/pkg/chat.3f9a.css",
                "/pkg/chat.ab12cd.js",
                "/pkg/chat.ab12cd.wasm",
                "/a&b.css"
            ]
        );
        assert!(extract_assets("<link rel=stylesheet href=\"/x.css").is_empty());
        assert!(extract_assets("").is_empty());
    }

    #[test]
    fn wasm_next_to_the_js() {
        let paths = vec![
            "/r/lobby".to_string(),
            "/pkg/chat.js".to_string(),
            "/pkg/chat.abc.js?x".to_string(),
            "/other/app.js".to_string(),
        ];
        assert_eq!(
            wasm_candidates(&paths),
            [
                "/pkg/chat.wasm",
                "/pkg/chat_bg.wasm",
                "/pkg/chat.abc.wasm",
                "/pkg/chat.abc_bg.wasm"
            ]
        );
        assert!(is_wasm("/pkg/chat.wasm?v=1"));
        assert!(!is_wasm("/pkg/chat.js"));
    }

    #[test]
    fn resolves_same_origin_paths() {
        let b = "http://127.0.0.1:3000";
        assert_eq!(
            same_origin_path("/pkg/a.js", b, "/r/x").as_deref(),
            Some("/pkg/a.js")
        );
        assert_eq!(
            same_origin_path("http://127.0.0.1:3000/pkg/a.js", b, "/r/x").as_deref(),
            Some("/pkg/a.js")
        );
        assert_eq!(
            same_origin_path("a.js", b, "/r/x").as_deref(),
            Some("/r/a.js")
        );
        assert_eq!(same_origin_path("//cdn/a.js", b, "/r/x"), None);
        assert_eq!(same_origin_path("https://cdn/a.js", b, "/r/x"), None);
    }
}

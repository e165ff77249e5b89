//! Message text with links: http(s) URLs become links that open safely;
//! everything else stays plain text (never HTML).

use leptos::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// Splits `text` into plain text and http/https links. Trailing punctuation
/// (".", ",", ")", …) is left out of a link, as people write "see https://x.io."
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find_link(rest) {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '<' | '>' | '"' | '「' | '」' | '、' | '。')
            })
            .unwrap_or(tail.len());
        let mut link = &tail[..end];
        while let Some(last) = link.chars().last() {
            let unbalanced_paren =
                last == ')' && link.matches('(').count() < link.matches(')').count();
            if matches!(last, '.' | ',' | ';' | ':' | '!' | '?' | '\'' | ']' | '}')
                || unbalanced_paren
            {
                link = &link[..link.len() - last.len_utf8()];
            } else {
                break;
            }
        }
        let scheme_len = if link.starts_with("https://") { 8 } else { 7 };
        if link.len() <= scheme_len {
            // Just "https://": not a link.
            out.push(Segment::Text(&rest[..start + end]));
            rest = &rest[start + end..];
            continue;
        }
        if start > 0 {
            out.push(Segment::Text(&rest[..start]));
        }
        out.push(Segment::Link(link));
        rest = &rest[start + link.len()..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    out
}

fn find_link(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let http = lower.find("http://");
    let https = lower.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Renders message text with safe links.
pub fn render(text: &str) -> impl IntoView {
    segments(text)
        .into_iter()
        .map(|s| match s {
            Segment::Text(t) => t.to_owned().into_any(),
            Segment::Link(href) => view! {
                <a href=href.to_owned() target="_blank" rel="noopener noreferrer">{href.to_owned()}</a>
            }
            .into_any(),
        })
        .collect_view()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::*;

    #[test]
    fn finds_links_and_leaves_the_rest_as_text() {
        assert_eq!(segments("no links here"), [Text("no links here")]);
        assert_eq!(
            segments("see https://example.com/a?b=c. ok"),
            [
                Text("see "),
                Link("https://example.com/a?b=c"),
                Text(". ok")
            ]
        );
        assert_eq!(
            segments("(http://x.io/wiki/Foo_(bar)) と https://例え.jp/パス。"),
            [
                Text("("),
                Link("http://x.io/wiki/Foo_(bar)"),
                Text(") と "),
                Link("https://例え.jp/パス"),
                Text("。"),
            ]
        );
    }

    #[test]
    fn only_http_and_https() {
        assert_eq!(
            segments("javascript:alert(1)"),
            [Text("javascript:alert(1)")]
        );
        assert_eq!(
            segments("ftp://x.io data:text/html,hi"),
            [Text("ftp://x.io data:text/html,hi")]
        );
        assert_eq!(
            segments("https:// alone"),
            [Text("https://"), Text(" alone")]
        );
    }
}

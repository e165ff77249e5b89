//! Server functions about who you are and what you may do: choosing a
//! name, changing messages (edit, delete, react), becoming a moderator and
//! banning. Each answers a plain HTML form too (a redirect back to the
//! page), so deleting works without JavaScript.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::domain::Message;

/// The caller, as the page needs to know them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Me {
    /// The public id your messages carry (none before the first page load).
    pub author: Option<String>,
    /// The name your session holds.
    pub name: Option<String>,
    pub moderator: bool,
    /// How long after posting a message may be edited.
    pub edit_window_secs: u64,
}

/// Where a plain form goes back to: the page it came from (a same-site
/// path only), else the lobby.
#[cfg(feature = "ssr")]
fn back_to(page: Option<String>) -> String {
    page.filter(|p| p.starts_with("/r/") && !p.contains("//"))
        .unwrap_or_else(|| "/r/lobby".to_owned())
}

/// Answers a plain form with a redirect (carrying the error, if any);
/// sets the error's status for the page's own calls.
#[cfg(feature = "ssr")]
fn finish<T>(result: Result<T, ApiError>, page: Option<String>) -> Result<T, ApiError> {
    use super::http;
    if let Err(e) = &result {
        http::set_status(e);
    }
    if http::is_plain_form() {
        let page = back_to(page);
        match &result {
            Ok(_) => leptos_axum::redirect(&page, false),
            Err(e) => leptos_axum::redirect(&http::error_location(&page, e, ""), false),
        }
    }
    result
}

/// Takes `name` for this browser's session (409 when someone holds it).
#[server(endpoint = "set_name", output = crate::api::codec::Json)]
pub async fn set_name(name: String) -> Result<Me, ApiError> {
    use super::{backend, Client};
    let name = crate::domain::SenderName::parse(&name)?;
    finish(backend()?.set_name(name, Client::current()).await, None)
}

/// Edits one of your messages (within the edit window).
#[server(endpoint = "edit_message", output = crate::api::codec::Json)]
pub async fn edit_message(id: String, content: String) -> Result<Message, ApiError> {
    use super::{backend, ChangeRequest, Client};
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| crate::domain::ValidationError::Id)?;
    let body = crate::domain::MessageBody::parse(&content)?;
    finish(
        backend()?
            .change(id, ChangeRequest::Edit(body), Client::current())
            .await,
        None,
    )
}

/// Deletes a message: your own, or any as a moderator. Also the action of
/// the plain "Delete" form (then `page` is where to go back to).
#[server(endpoint = "delete_message", output = crate::api::codec::Json)]
pub async fn delete_message(id: String, page: Option<String>) -> Result<Message, ApiError> {
    use super::{backend, ChangeRequest, Client};
    let result = match uuid::Uuid::parse_str(id.trim()) {
        Ok(id) => {
            backend()?
                .change(id, ChangeRequest::Delete, Client::current())
                .await
        }
        Err(_) => Err(crate::domain::ValidationError::Id.into()),
    };
    finish(result, page)
}

/// Adds your reaction, or takes it back.
#[server(endpoint = "react", output = crate::api::codec::Json)]
pub async fn react(id: String, emoji: String) -> Result<Message, ApiError> {
    use super::{backend, ChangeRequest, Client};
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| crate::domain::ValidationError::Id)?;
    finish(
        backend()?
            .change(id, ChangeRequest::React(emoji), Client::current())
            .await,
        None,
    )
}

/// Makes this session a moderator, given the moderator token.
#[server(endpoint = "become_moderator", output = crate::api::codec::Json)]
pub async fn become_moderator(token: String) -> Result<Me, ApiError> {
    use super::{backend, Client};
    let result = backend()?.become_moderator(&token, Client::current()).await;
    if super::http::is_plain_form() {
        let page = if result.is_ok() {
            "/moderate?ok=1".to_owned()
        } else {
            "/moderate?error=forbidden".to_owned()
        };
        leptos_axum::redirect(&page, false);
    }
    if let Err(e) = &result {
        super::http::set_status(e);
    }
    result
}

/// Bans an author (moderators only), optionally removing their messages of
/// the last 24 hours. Returns how many messages were removed.
#[server(endpoint = "ban_author", output = crate::api::codec::Json)]
pub async fn ban_author(author: String, remove_recent: bool) -> Result<usize, ApiError> {
    use super::{backend, Client};
    finish(
        backend()?
            .ban(author.trim(), remove_recent, Client::current())
            .await,
        None,
    )
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn plain_forms_only_go_back_to_room_pages_of_this_site() {
        assert_eq!(back_to(Some("/r/general".into())), "/r/general");
        assert_eq!(back_to(Some("https://evil.example/".into())), "/r/lobby");
        assert_eq!(back_to(Some("//evil.example/r/x".into())), "/r/lobby");
        assert_eq!(back_to(Some("/r//evil.example".into())), "/r/lobby");
        assert_eq!(back_to(None), "/r/lobby");
    }
}

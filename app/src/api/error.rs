use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

use crate::domain::ValidationError;

/// The words for a name someone else holds, shown in the page as is.
pub const NAME_IN_USE: &str = "This name is in use by someone else; please choose another.";

/// Errors a client can see. The text is safe to show to people: internal
/// details are logged on the server and never put in here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApiError {
    /// 422: the input broke a rule; the text says which.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// 400: the request itself was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: this needs a signed-in (or session) identity.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: e.g. a WebSocket from a foreign origin, a cross-site form, or
    /// someone else's message.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such message.
    #[error("{0}")]
    NotFound(String),
    /// 409: the name is held by someone else, the edit window has passed,
    /// or the message was deleted.
    #[error("{0}")]
    Conflict(String),
    /// 429: too many requests from this client; try again after the wait.
    #[error("You are sending too fast. Please wait {} s.", retry_after_ms.div_ceil(1000))]
    RateLimited { retry_after_ms: u64 },
    /// 503: the database did not answer in time; retrying later is safe.
    #[error("The chat is temporarily unavailable. Your message was not sent; please try again.")]
    Unavailable,
    /// 500: a bug or an unexpected failure; details are in the server log.
    #[error("Something went wrong on the server. Please try again.")]
    Internal,
    /// The request never got a proper answer (network down, server gone).
    #[error("Could not reach the server ({0}). Check your connection and try again.")]
    Transport(String),
}

impl ApiError {
    /// The HTTP status this error is sent with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Invalid(_) => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::RateLimited { .. } => 429,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
            ApiError::Transport(_) => 502,
        }
    }
}

impl ApiError {
    /// For `Retry-After`: whole seconds, rounded up.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_ms } => Some(retry_after_ms.div_ceil(1000)),
            _ => None,
        }
    }
}

impl FromServerFnError for ApiError {
    type Encoder = super::codec::JsonText;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(e) | ServerFnErrorErr::MissingArg(e) => {
                ApiError::BadRequest(format!("Bad request: {e}"))
            }
            ServerFnErrorErr::Request(e) | ServerFnErrorErr::Response(e) => ApiError::Transport(e),
            other => ApiError::Transport(other.to_string()),
        }
    }
}

impl ApiError {
    /// A short stable code, used to carry the error through a no-JS redirect
    /// (never free text, so a crafted link cannot put words in our mouth).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(v) => match v {
                ValidationError::Room => "room",
                ValidationError::SenderEmpty => "sender_empty",
                ValidationError::SenderTooLong => "sender_too_long",
                ValidationError::SenderControl => "sender_control",
                ValidationError::SenderFormat => "sender_format",
                ValidationError::SenderReserved => "sender_reserved",
                ValidationError::ContentEmpty => "content_empty",
                ValidationError::ContentTooLong(_) => "content_too_long",
                ValidationError::ContentControl => "content_control",
                ValidationError::Id => "id",
                ValidationError::ReadOnlyRoom => "read_only_room",
                ValidationError::Reaction => "reaction",
                ValidationError::Unchangeable => "unchangeable",
            },
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(m) if m == NAME_IN_USE => "name_in_use",
            ApiError::Conflict(_) => "conflict",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal | ApiError::Transport(_) => "internal",
        }
    }

    /// The error for a code from [`ApiError::code`]; `draft` gives the
    /// character count for "too long".
    pub fn from_code(code: &str, draft: &str) -> Option<Self> {
        let v = match code {
            "room" => ValidationError::Room,
            "sender_empty" => ValidationError::SenderEmpty,
            "sender_too_long" => ValidationError::SenderTooLong,
            "sender_control" => ValidationError::SenderControl,
            "sender_format" => ValidationError::SenderFormat,
            "sender_reserved" => ValidationError::SenderReserved,
            "content_empty" => ValidationError::ContentEmpty,
            "content_too_long" => {
                ValidationError::ContentTooLong(crate::domain::content_chars(draft))
            }
            "content_control" => ValidationError::ContentControl,
            "id" => ValidationError::Id,
            "read_only_room" => ValidationError::ReadOnlyRoom,
            "reaction" => ValidationError::Reaction,
            "unchangeable" => ValidationError::Unchangeable,
            "bad_request" => {
                return Some(ApiError::BadRequest(
                    "The request was not understood.".into(),
                ))
            }
            "forbidden" => return Some(ApiError::Forbidden("Not allowed.".into())),
            "unauthorized" => return Some(ApiError::Unauthorized("Please sign in.".into())),
            "not_found" => return Some(ApiError::NotFound("No such message.".into())),
            "name_in_use" => return Some(ApiError::Conflict(NAME_IN_USE.into())),
            "conflict" => {
                return Some(ApiError::Conflict(
                    "That could not be done any more.".into(),
                ))
            }
            // The exact wait is not carried in the URL; a few seconds is honest.
            "rate_limited" => {
                return Some(ApiError::RateLimited {
                    retry_after_ms: 5000,
                })
            }
            "unavailable" => return Some(ApiError::Unavailable),
            "internal" => return Some(ApiError::Internal),
            _ => return None,
        };
        Some(ApiError::Invalid(v))
    }
}

#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for ApiError {
    /// `{"error": "..."}` with the variant's status.
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            axum::Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        let all = [
            ApiError::Invalid(ValidationError::Room),
            ApiError::Invalid(ValidationError::SenderEmpty),
            ApiError::Invalid(ValidationError::SenderTooLong),
            ApiError::Invalid(ValidationError::SenderControl),
            ApiError::Invalid(ValidationError::SenderFormat),
            ApiError::Invalid(ValidationError::SenderReserved),
            ApiError::Invalid(ValidationError::ContentEmpty),
            ApiError::Invalid(ValidationError::ContentControl),
            ApiError::Invalid(ValidationError::Id),
            ApiError::Unavailable,
            ApiError::Internal,
            ApiError::RateLimited {
                retry_after_ms: 5000,
            },
            ApiError::Conflict(NAME_IN_USE.into()),
        ];
        for e in all {
            assert_eq!(ApiError::from_code(e.code(), ""), Some(e));
        }
        assert_eq!(
            ApiError::from_code("content_too_long", &"あ".repeat(2001)),
            Some(ApiError::Invalid(ValidationError::ContentTooLong(2001)))
        );
        assert_eq!(ApiError::from_code("<script>", ""), None);
    }
}

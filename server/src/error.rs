//! How storage failures become client-visible [`ApiError`]s. Internal
//! details are logged here and never sent.

use app::{api::ApiError, domain::ValidationError};

use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => {
                tracing::error!(error = ?e, "row unexpectedly missing");
                ApiError::Internal
            }
            StoreError::Unavailable(_) => {
                tracing::warn!(error = ?e, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::NameTaken => ApiError::Conflict(app::api::NAME_IN_USE.into()),
            StoreError::Forbidden => {
                ApiError::Forbidden("Only its author or a moderator may do that.".into())
            }
            StoreError::TooLate => ApiError::Conflict(
                "This message can no longer be edited: the edit window has passed.".into(),
            ),
            StoreError::Deleted => ApiError::Conflict("This message was deleted.".into()),
            StoreError::NotChangeable => ValidationError::Unchangeable.into(),
            other => {
                tracing::error!(error = ?other, "database error");
                ApiError::Internal
            }
        }
    }
}

//! How storage failures become client-visible [`ApiError`]s. Internal
//! details are logged here and never sent.

use app::api::ApiError;

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
            other => {
                tracing::error!(error = ?other, "database error");
                ApiError::Internal
            }
        }
    }
}

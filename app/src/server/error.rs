//! How server-side failures become client-visible [`ApiError`]s and HTTP
//! responses. Internal details are logged here and never sent.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

use super::store::StoreError;
use crate::api::ApiError;

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

impl IntoResponse for ApiError {
    /// `{"error": "..."}` with the variant's status.
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

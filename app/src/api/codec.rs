//! The server functions' JSON, read in the browser the way the page's
//! hydration data and socket frames are read: from a `&str`.
//!
//! server_fn's own `Json` reads a response with `serde_json::from_slice`,
//! while Leptos reads hydration data and the socket reads frames with
//! `from_str`. A type read both ways is compiled twice (serde_json's
//! `SliceRead` and `StrRead` readers), so the WASM carried two copies of
//! every deserialiser the page and its server functions share: a
//! [`Message`](crate::domain::Message), an [`ApiError`](super::ApiError).
//! The bytes on the wire are the same JSON either way.

use leptos::server_fn::{
    codec::{Encoding, JsonEncoding, Post},
    Bytes, ContentType, Decodes, Encodes, Format, FormatType,
};
use serde::{de::DeserializeOwned, Serialize};

/// JSON, read from text; written as server_fn's [`JsonEncoding`] writes it.
pub struct JsonText;

/// A server function's arguments or result as [`JsonText`] in a `POST` body.
pub type Json = Post<JsonText>;

impl ContentType for JsonText {
    const CONTENT_TYPE: &'static str = JsonEncoding::CONTENT_TYPE;
}

impl FormatType for JsonText {
    const FORMAT_TYPE: Format = JsonEncoding::FORMAT_TYPE;
}

impl<T: Serialize> Encodes<T> for JsonText {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        JsonEncoding::encode(output)
    }
}

impl<T: DeserializeOwned> Decodes<T> for JsonText {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(serde::de::Error::custom)?;
        serde_json::from_str(text)
    }
}

// `Post<JsonText>` must be an encoding as server_fn's own are.
const _: fn() = || {
    fn is_encoding<E: Encoding>() {}
    is_encoding::<Json>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;

    #[test]
    fn reads_what_it_writes() {
        let errors = [
            ApiError::NotFound("no such room".into()),
            ApiError::RateLimited {
                retry_after_ms: 1500,
            },
            ApiError::BadRequest("Bad request: ü".into()),
        ];
        for e in errors {
            let bytes = <JsonText as Encodes<ApiError>>::encode(&e).unwrap();
            let back: ApiError = JsonText::decode(bytes).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn refuses_what_is_not_utf8_or_json() {
        let not_utf8 = Bytes::from_static(b"\"\xff\"");
        let e = <JsonText as Decodes<String>>::decode(not_utf8).unwrap_err();
        assert!(e.to_string().contains("utf-8"), "{e}");
        let not_json = Bytes::from_static(b"{\"a\":");
        assert!(<JsonText as Decodes<ApiError>>::decode(not_json).is_err());
    }
}

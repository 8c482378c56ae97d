//! Reading a JSON object body, with every failure as a typed `Error` so each dialect can say
//! it in its own shape (the design's "malformed JSON also comes back in that dialect's shape").

use std::marker::PhantomData;

use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value};

use crate::error::{Error, FieldError, FieldProblem};
use crate::state::AppState;
use crate::surface::{ErrorShape, ShapedError};

/// The request body as a JSON object; `None` when the body is empty.
///
/// An empty body is "no data" whatever its Content-Type (as Django REST framework treats it);
/// a non-empty body must be `application/json` (or `application/*+json`) and an object.
pub(crate) struct JsonObject<D>(pub(crate) Option<Map<String, Value>>, pub(crate) PhantomData<fn() -> D>);

impl<D: ErrorShape> FromRequest<AppState> for JsonObject<D> {
    type Rejection = ShapedError<D>;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let bytes = axum::body::to_bytes(req.into_body(), state.config.http.body_limit).await.map_err(|e| {
            if is_length_limit(&e) {
                Error::PayloadTooLarge
            } else {
                Error::MalformedJson(format!("could not read the request body: {e}"))
            }
        })?;
        if bytes.is_empty() {
            return Ok(JsonObject(None, PhantomData));
        }
        match content_type {
            Some(ct) if is_json(&ct) => {}
            other => return Err(Error::UnsupportedMediaType(other.unwrap_or_default()).into()),
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| Error::MalformedJson(e.to_string()))?;
        match value {
            Value::Object(map) => Ok(JsonObject(Some(map), PhantomData)),
            other => Err(Error::NotAnObject(python_type(&other)).into()),
        }
    }
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `application/json`, or any `application/*+json`, with any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The JSON type named as Python names it, because Django REST framework's messages do.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A required string field. Numbers are accepted as their text (as DRF's `CharField` does);
/// with `trim`, surrounding whitespace is removed before the blank check.
pub(crate) fn required_string(
    body: Option<&Map<String, Value>>,
    field: &'static str,
    trim: bool,
) -> Result<String, FieldError> {
    let fail = |problem| FieldError { field, problem };
    let text = match body.and_then(|m| m.get(field)) {
        None => return Err(fail(FieldProblem::Required)),
        Some(Value::Null) => return Err(fail(FieldProblem::Null)),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(fail(FieldProblem::NotAString)),
    };
    let text = if trim { text.trim().to_owned() } else { text };
    // why: like DRF's CharField, an untrimmed field (a password) is blank only when empty.
    if text.is_empty() {
        return Err(fail(FieldProblem::Blank));
    }
    Ok(text)
}

/// An optional string field: absent or `null` is `None`; anything but a string is an error.
pub(crate) fn optional_string(
    body: Option<&Map<String, Value>>,
    field: &'static str,
) -> Result<Option<String>, FieldError> {
    match body.and_then(|m| m.get(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError { field, problem: FieldProblem::NotAString }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_content_types() {
        for ok in ["application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "", "json"] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn string_fields() {
        let body = json!({"a": "x", "b": "  ", "c": null, "d": 5, "e": [1], "f": true, "g": " y "});
        let m = body.as_object();
        assert_eq!(required_string(m, "a", true).unwrap(), "x");
        assert_eq!(required_string(m, "d", true).unwrap(), "5");
        assert_eq!(required_string(m, "g", true).unwrap(), "y");
        assert_eq!(required_string(m, "g", false).unwrap(), " y ");
        assert_eq!(required_string(m, "b", true).unwrap_err().problem, FieldProblem::Blank);
        assert_eq!(required_string(m, "b", false).unwrap(), "  ");
        assert_eq!(required_string(m, "c", true).unwrap_err().problem, FieldProblem::Null);
        assert_eq!(required_string(m, "e", true).unwrap_err().problem, FieldProblem::NotAString);
        assert_eq!(required_string(m, "f", true).unwrap_err().problem, FieldProblem::NotAString);
        assert_eq!(required_string(m, "zz", true).unwrap_err().problem, FieldProblem::Required);
        assert_eq!(required_string(None, "a", true).unwrap_err().problem, FieldProblem::Required);
        assert_eq!(optional_string(m, "c").unwrap(), None);
        assert_eq!(optional_string(m, "zz").unwrap(), None);
        assert_eq!(optional_string(m, "a").unwrap().as_deref(), Some("x"));
        assert!(optional_string(m, "d").is_err());
    }
}

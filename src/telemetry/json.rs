//! The JSON log line: one flat object, as Loki, Vector and Elasticsearch read it without
//! remapping: `timestamp` (RFC 3339, UTC), `level`, `message`, `target`, then the fields of
//! every span the event is in (outermost first: the access log's `request_id`, `method`,
//! `route`, ...), then the event's own fields, numbers as numbers.
//!
//! why our own formatter: tracing-subscriber's JSON nests the message under `fields` and the
//! spans under `span` and `spans`; it has no flat form.

use std::fmt;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The flat JSON event format; spans' fields must be recorded with `JsonFields`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Line::default();
        line.push("timestamp", Value::String(now()));
        line.push("level", Value::String(meta.level().as_str().to_owned()));
        let mut fields = Fields::default();
        event.record(&mut fields);
        // why a string always: an event without a message (sqlx's query lines) keeps the type.
        line.push("message", Value::String(fields.message.take().unwrap_or_default()));
        line.push("target", Value::String(meta.target().to_owned()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(recorded) = extensions.get::<FormattedFields<JsonFields>>() else { continue };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(recorded) {
                    for (key, value) in map {
                        line.push(&key, value);
                    }
                }
            }
        }
        for (key, value) in fields.values {
            line.push(&key, value);
        }
        line.write(&mut writer)
    }
}

/// The wall clock, for the line's timestamp only.
// why allowed: a log line's time is not policy; the service reads time through its clock.
#[allow(clippy::disallowed_methods)]
fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// Keys in the order written; a later value for a key replaces the earlier in its place
/// (an event's field over a span's of the same name).
#[derive(Default)]
struct Line(Vec<(String, Value)>);

impl Line {
    fn push(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    fn write(&self, writer: &mut Writer<'_>) -> fmt::Result {
        writer.write_str("{")?;
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                writer.write_str(",")?;
            }
            let key = serde_json::to_string(key).map_err(|_| fmt::Error)?;
            let value = serde_json::to_string(value).map_err(|_| fmt::Error)?;
            write!(writer, "{key}:{value}")?;
        }
        writer.write_str("}\n")
    }
}

/// An event's fields, with their types kept (numbers and booleans stay what they are).
#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Vec<(String, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        self.values.push((field.name().to_owned(), value));
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.put(field, Value::from(value));
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.put(field, Value::from(format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    #[test]
    fn one_flat_object_a_line_with_typed_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("request", request_id = "r-1", method = "GET", status = 1_u16);
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", route = "/verify");
            let _inner = inner.enter();
            tracing::info!(status = 200_u16, latency_ms = 0.25_f64, ok = true, note = %"a \"quoted\" note", "finished");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("{\"timestamp\":\""), "{text}");
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        for key in ["timestamp", "level", "message", "target", "request_id", "method", "route", "status", "latency_ms"]
        {
            assert!(keys.contains(&key), "no {key} in {line}");
        }
        assert!(!keys.contains(&"span") && !keys.contains(&"spans") && !keys.contains(&"fields"), "{line}");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "finished");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["route"], "/verify");
        assert_eq!(line["status"], 200, "the event's field replaces the span's of the same name");
        assert_eq!(line["latency_ms"], 0.25);
        assert_eq!(line["ok"], true);
        assert_eq!(line["note"], "a \"quoted\" note");
        let ts = line["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z'), "UTC: {ts}");
        OffsetDateTime::parse(ts, &Rfc3339).unwrap();
    }
}

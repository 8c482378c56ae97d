//! Property tests of `expirationTime` in the usertoken login body (`login_options`).
//! Why property tests, and which oracles: `crate::test_strategies`.

use proptest::prelude::*;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::dialect::usertoken::login_options;
use crate::error::Error;

fn expiry(value: Value) -> Result<Option<OffsetDateTime>, Error> {
    let body: Map<String, Value> = [("expirationTime".to_owned(), value)].into_iter().collect();
    login_options(Some(&body)).map(|options| options.expires_at)
}

/// An offset of whole minutes, within RFC 3339's ±23:59; often UTC.
fn offset() -> impl Strategy<Value = UtcOffset> {
    prop_oneof![
        1 => Just(UtcOffset::UTC),
        3 => (-(23 * 60 + 59)..=(23 * 60 + 59)).prop_map(|minutes: i32| {
            UtcOffset::from_hms((minutes / 60) as i8, (minutes % 60) as i8, 0).unwrap()
        }),
    ]
}

/// Any instant whose local date is within years 1 to 9999 at any offset, in such an offset.
fn instant() -> impl Strategy<Value = OffsetDateTime> {
    let first = time::macros::datetime!(0001-01-02 0:00 UTC).unix_timestamp();
    let last = time::macros::datetime!(9999-12-30 23:59:59 UTC).unix_timestamp();
    (first..=last, 0..1_000_000_000u32, offset()).prop_map(|(secs, nanos, offset)| {
        let utc = OffsetDateTime::from_unix_timestamp(secs).unwrap().replace_nanosecond(nanos).unwrap();
        utc.to_offset(offset)
    })
}

fn two_digits() -> impl Strategy<Value = u8> {
    prop_oneof![3 => 0..=60u8, 1 => 0..=99u8]
}

/// Date and time components, each often out of range.
#[derive(Debug, Clone)]
struct Components {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    fraction: Option<String>,
    /// `None`: `Z`; else the sign, hours and minutes.
    offset: Option<(bool, u8, u8)>,
}

fn components() -> impl Strategy<Value = Components> {
    (
        prop_oneof![0..=9999u16, Just(1972u16), Just(2016u16)],
        prop_oneof![3 => 1..=12u8, 1 => 0..=99u8],
        prop_oneof![3 => 1..=31u8, 1 => 0..=99u8],
        prop_oneof![3 => 0..=23u8, 1 => Just(23u8), 1 => 0..=99u8],
        prop_oneof![3 => 0..=59u8, 1 => Just(59u8), 1 => 0..=99u8],
        prop_oneof![3 => 0..=59u8, 1 => Just(60u8), 1 => two_digits()],
        prop::option::of("[0-9]{1,12}"),
        prop::option::of((any::<bool>(), prop_oneof![3 => 0..=23u8, 1 => 0..=99u8], two_digits())),
    )
        .prop_map(|(year, month, day, hour, minute, second, fraction, offset)| Components {
            year,
            month,
            day,
            hour,
            minute,
            second,
            fraction,
            offset,
        })
}

/// What RFC 3339 (with the leap-second rule of `time`) makes of the components: `None` if
/// any is out of range. A leap second (`:60`) is valid only as the last second of a month
/// in UTC, and reads as the nanosecond before the next minute.
fn meaning(c: &Components) -> Option<OffsetDateTime> {
    let date = Date::from_calendar_date(i32::from(c.year), Month::try_from(c.month).ok()?, c.day).ok()?;
    let nanos = c.fraction.as_ref().map_or(0, |f| format!("{f:0<9}")[..9].parse::<u32>().unwrap());
    let leap = c.second == 60;
    let time = if leap {
        Time::from_hms_nano(c.hour, c.minute, 59, 999_999_999)
    } else {
        Time::from_hms_nano(c.hour, c.minute, c.second, nanos)
    }
    .ok()?;
    let offset = match c.offset {
        None => UtcOffset::UTC,
        Some((negative, h, m)) => {
            let sign = if negative { -1 } else { 1 };
            if h > 23 {
                return None;
            }
            UtcOffset::from_hms(sign * h as i8, sign * i8::try_from(m).ok()?, 0).ok()?
        }
    };
    let dt = date.with_time(time).assume_offset(offset);
    if leap {
        let utc = dt.to_offset(UtcOffset::UTC);
        let last_of_month = utc.date().next_day().is_none_or(|d| d.month() != utc.month());
        if !(last_of_month && (utc.hour(), utc.minute(), utc.second()) == (23, 59, 59)) {
            return None;
        }
    }
    Some(dt)
}

proptest! {
    /// Any instant in years 1 to 9999, at any offset, formatted as RFC 3339, parses back to
    /// the same instant and offset.
    #[test]
    fn formatted_times_parse_back(dt in instant()) {
        let text = dt.format(&Rfc3339).unwrap();
        let parsed = expiry(Value::from(text.as_str())).unwrap().unwrap();
        prop_assert_eq!(parsed, dt, "{}", text);
        prop_assert_eq!(parsed.offset(), dt.offset());
    }

    /// The same, written by hand in RFC 3339's other spellings: `t` or a space for `T`, `z`
    /// for `Z`, `-00:00`, and 0 to 12 fraction digits (past nine they are ignored).
    #[test]
    fn hand_written_times_parse_to_their_instant(
        dt in instant(),
        separator in prop::sample::select(vec!['T', 't', ' ']),
        zulu in prop::sample::select(vec!["Z", "z", "+00:00", "-00:00"]),
        digits in 0..=12usize,
    ) {
        let nanos = format!("{:09}{}", dt.nanosecond(), "123");
        let fraction = if digits == 0 { String::new() } else { format!(".{}", &nanos[..digits]) };
        let offset = if dt.offset().is_utc() {
            zulu.to_owned()
        } else {
            let (h, m, _) = dt.offset().as_hms();
            format!("{}{:02}:{:02}", if dt.offset().is_negative() { '-' } else { '+' }, h.abs(), m.abs())
        };
        let text = format!(
            "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}{fraction}{offset}",
            dt.year(), u8::from(dt.month()), dt.day(), dt.hour(), dt.minute(), dt.second()
        );
        let kept = nanos[..digits.min(9)].parse::<u32>().unwrap_or(0) * 10u32.pow(9 - digits.min(9) as u32);
        let want = dt.replace_nanosecond(kept).unwrap();
        prop_assert_eq!(expiry(Value::from(text.as_str())).unwrap(), Some(want), "{}", text);
    }

    /// Date-time-shaped strings with components often out of range: accepted exactly when
    /// every component is in range (and a leap second is the last of a month, UTC), with
    /// the meaning of the components; otherwise `Error::Invalid`.
    #[test]
    fn out_of_range_components_are_refused(c in components()) {
        let fraction = c.fraction.as_ref().map_or(String::new(), |f| format!(".{f}"));
        let offset = c.offset.map_or("Z".to_owned(), |(negative, h, m)| {
            format!("{}{h:02}:{m:02}", if negative { '-' } else { '+' })
        });
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{offset}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        match (expiry(Value::from(text.as_str())), meaning(&c)) {
            (Ok(got), want) => prop_assert_eq!(got, want, "{}", text),
            (Err(Error::Invalid(_)), None) => {}
            (got, want) => prop_assert!(false, "{text}: got {got:?}, want {want:?}"),
        }
    }

    /// Any string, or any other JSON value, never panics: a string is a time or
    /// `Error::Invalid`; `null` is no expiry; anything else is a field error.
    #[test]
    fn arbitrary_values_are_typed_failures(
        value in prop_oneof![
            any::<String>().prop_map(Value::from),
            "[0-9:.tTzZ+ -]{0,40}".prop_map(Value::from),
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            prop::collection::vec(any::<u8>(), 0..3).prop_map(Value::from),
        ],
    ) {
        let string = value.is_string();
        match expiry(value.clone()) {
            Ok(Some(_)) | Err(Error::Invalid(_)) => prop_assert!(string, "{value}"),
            Ok(None) => prop_assert!(value.is_null()),
            Err(Error::Fields(_)) => prop_assert!(!string && !value.is_null(), "{value}"),
            Err(other) => prop_assert!(false, "{value}: {other:?}"),
        }
    }
}

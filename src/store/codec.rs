//! Column types that read the same on both engines, so each row struct is written once.
//!
//! SQLite stores times as INTEGER microseconds since the epoch, token ids as hyphenated
//! lowercase TEXT, balances as their exact decimal TEXT and counts as INTEGER; Postgres uses
//! `timestamptz`, `uuid`, `numeric` and `integer`. Each newtype here decodes either. (Binding
//! goes the other way, in `sql::Value`.)

use rust_decimal::Decimal;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use time::OffsetDateTime;
use uuid::Uuid;

/// A time as SQLite stores it. why i64 microseconds: they cover ±292,000 years and compare and
/// sort as Postgres `timestamptz` does; the clamp only guards against absurd input.
pub(super) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Result<OffsetDateTime, BoxDynError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| format!("stored time {us} out of range: {e}").into())
}

/// Implements `Type` and `Decode` for a newtype on both engines: on each, the stored type and a
/// conversion from it.
macro_rules! decodes {
    ($name:ident: sqlite $s:ty => $fs:expr, postgres $p:ty => $fp:expr) => {
        impl Type<Sqlite> for $name {
            fn type_info() -> SqliteTypeInfo {
                <$s as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <$s as Type<Sqlite>>::compatible(ty)
            }
        }
        impl<'r> Decode<'r, Sqlite> for $name {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                let stored = <$s as Decode<'r, Sqlite>>::decode(value)?;
                #[allow(clippy::redundant_closure_call)]
                Ok($name(($fs)(stored)?))
            }
        }
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <$p as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <$p as Type<Postgres>>::compatible(ty)
            }
        }
        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let stored = <$p as Decode<'r, Postgres>>::decode(value)?;
                #[allow(clippy::redundant_closure_call)]
                Ok($name(($fp)(stored)?))
            }
        }
    };
}

/// A time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Time(pub(super) OffsetDateTime);

decodes!(Time: sqlite i64 => from_micros, postgres OffsetDateTime => Ok::<_, BoxDynError>);

/// A token id column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Id(pub(super) Uuid);

decodes!(Id: sqlite String => |s: String| Uuid::parse_str(&s).map_err(|e| format!("bad token id {s:?}: {e}")),
    postgres Uuid => Ok::<_, BoxDynError>);

/// An exact decimal column, its scale kept (`1000.00` and `0.00` read back as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dec(pub(super) Decimal);

impl Type<Sqlite> for Dec {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for Dec {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(Dec(s.parse().map_err(|e| format!("unreadable decimal {s:?}: {e}"))?))
    }
}

impl Type<Postgres> for Dec {
    fn type_info() -> PgTypeInfo {
        <Decimal as Type<Postgres>>::type_info()
    }
}

/// Postgres' binary `numeric`: digit count, weight, sign, display scale, then the digits.
const NUMERIC_SCALE: std::ops::Range<usize> = 6..8;

// why by hand: sqlx's `Decimal` codec writes and reads a zero without its scale (`0.00` comes
// back as `0`); a balance is shown exactly as stored.
impl<'r> Decode<'r, Postgres> for Dec {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.format() == PgValueFormat::Text {
            return Ok(Dec(value.as_str()?.parse()?));
        }
        let scale = value.as_bytes()?.get(NUMERIC_SCALE).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let mut d = <Decimal as Decode<'r, Postgres>>::decode(value)?;
        if d.is_zero() {
            d.rescale(u32::from(scale));
        }
        Ok(Dec(d))
    }
}

impl Encode<'_, Postgres> for Dec {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        if !self.0.is_zero() {
            return <Decimal as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf);
        }
        // A zero: no digits, weight 0, positive, and the scale it was given.
        let scale = u16::try_from(self.0.scale()).unwrap_or(0);
        for field in [0u16, 0, 0, scale] {
            buf.extend_from_slice(&field.to_be_bytes());
        }
        Ok(IsNull::No)
    }
}

/// A non-negative count column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Count(pub(super) u32);

decodes!(Count: sqlite i64 => |n: i64| u32::try_from(n).map_err(|_| format!("bad count {n}")),
    postgres i32 => |n: i32| u32::try_from(n).map_err(|_| format!("bad count {n}")));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        for t in [OffsetDateTime::UNIX_EPOCH, time::macros::datetime!(2030-01-02 03:04:05.123456 UTC)] {
            assert_eq!(from_micros(micros(t)).unwrap(), t);
        }
        assert!(from_micros(i64::MAX).is_err(), "out of the calendar is an error, not a panic");
    }
}

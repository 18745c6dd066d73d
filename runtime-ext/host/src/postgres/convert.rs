//! Conversions between `spin:postgres@4.2.0` values and PostgreSQL wire types.
//!
//! Column types map as Spin maps them; a type the interface has no variant for reaches the
//! guest as `other(name)` with its raw binary value as `unsupported`. Parameters are checked
//! against the server-inferred parameter type by tokio-postgres, so e.g. an `int64` parameter
//! for an `int4` column is a `bad-parameter` error, as under Spin.

use std::error::Error as StdError;

use anyhow::{Context, anyhow};
use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use postgres_range::{BoundSided, BoundType, Normalizable, Range, RangeBound};
use rust_decimal::Decimal;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::bindings::postgres::{DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind};

type BoxError = Box<dyn StdError + Sync + Send>;

/// The interface's name for a column's type.
pub fn data_type(pg_type: &Type) -> DbDataType {
    match *pg_type {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        ref other => DbDataType::Other(other.name().to_owned()),
    }
}

/// Reads column `index` of `row` as the interface's value (`db-null` for SQL NULL).
/// About how many bytes `value` takes, as the guest will get it.
pub fn size(value: &DbValue) -> usize {
    const FIXED: usize = 16;
    let strings = |items: &[Option<String>]| -> usize {
        items
            .iter()
            .map(|s| FIXED + s.as_ref().map_or(0, String::len))
            .sum()
    };
    FIXED
        + match value {
            DbValue::Str(s) | DbValue::Uuid(s) | DbValue::Decimal(s) => s.len(),
            DbValue::Binary(b) | DbValue::Jsonb(b) | DbValue::Unsupported(b) => b.len(),
            DbValue::ArrayStr(items) | DbValue::ArrayDecimal(items) => strings(items),
            DbValue::ArrayInt32(items) => items.len() * 8,
            DbValue::ArrayInt64(items) => items.len() * 16,
            DbValue::RangeDecimal((low, high)) => [low, high]
                .iter()
                .flat_map(|b| b.as_ref())
                .map(|(s, _)| s.len())
                .sum(),
            _ => 0,
        }
}

pub fn db_value(row: &Row, index: usize) -> anyhow::Result<DbValue> {
    fn get<'a, T: FromSql<'a>>(
        row: &'a Row,
        index: usize,
        wrap: impl FnOnce(T) -> anyhow::Result<DbValue>,
    ) -> anyhow::Result<DbValue> {
        match row.try_get::<_, Option<T>>(index)? {
            Some(value) => wrap(value),
            None => Ok(DbValue::DbNull),
        }
    }
    let column = &row.columns()[index];
    let value = match *column.type_() {
        Type::BOOL => get(row, index, |v| Ok(DbValue::Boolean(v)))?,
        Type::CHAR => get(row, index, |v| Ok(DbValue::Int8(v)))?,
        Type::INT2 => get(row, index, |v| Ok(DbValue::Int16(v)))?,
        Type::INT4 => get(row, index, |v| Ok(DbValue::Int32(v)))?,
        Type::INT8 => get(row, index, |v| Ok(DbValue::Int64(v)))?,
        Type::FLOAT4 => get(row, index, |v| Ok(DbValue::Floating32(v)))?,
        Type::FLOAT8 => get(row, index, |v| Ok(DbValue::Floating64(v)))?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get(row, index, |v| Ok(DbValue::Str(v)))?
        }
        Type::BYTEA => get(row, index, |v| Ok(DbValue::Binary(v)))?,
        Type::DATE => get(row, index, |v: NaiveDate| {
            Ok(DbValue::Date(date_to_wit(v)?))
        })?,
        Type::TIME => get(row, index, |v: NaiveTime| {
            Ok(DbValue::Time(time_to_wit(v)?))
        })?,
        Type::TIMESTAMP => get(row, index, |v: NaiveDateTime| {
            Ok(DbValue::Datetime(datetime_to_wit(v)?))
        })?,
        Type::TIMESTAMPTZ => get(row, index, |v: DateTime<Utc>| {
            Ok(DbValue::Datetime(datetime_to_wit(v.naive_utc())?))
        })?,
        Type::UUID => get(row, index, |v: uuid::Uuid| Ok(DbValue::Uuid(v.to_string())))?,
        Type::JSONB => get(row, index, |v: serde_json::Value| {
            Ok(DbValue::Jsonb(serde_json::to_vec(&v)?))
        })?,
        Type::NUMERIC => get(row, index, |v: Decimal| Ok(DbValue::Decimal(v.to_string())))?,
        Type::INT4_RANGE => get(row, index, |v: Range<i32>| {
            Ok(DbValue::RangeInt32(range_to_wit(&v, |n| *n)))
        })?,
        Type::INT8_RANGE => get(row, index, |v: Range<i64>| {
            Ok(DbValue::RangeInt64(range_to_wit(&v, |n| *n)))
        })?,
        Type::NUM_RANGE => get(row, index, |v: Range<RangeDecimal>| {
            Ok(DbValue::RangeDecimal(range_to_wit(&v, |d| d.0.to_string())))
        })?,
        Type::INT4_ARRAY => get(row, index, |v| Ok(DbValue::ArrayInt32(v)))?,
        Type::INT8_ARRAY => get(row, index, |v| Ok(DbValue::ArrayInt64(v)))?,
        Type::NUMERIC_ARRAY => get(row, index, |v: Vec<Option<Decimal>>| {
            Ok(DbValue::ArrayDecimal(
                v.into_iter().map(|d| d.map(|d| d.to_string())).collect(),
            ))
        })?,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get(row, index, |v| Ok(DbValue::ArrayStr(v)))?
        }
        Type::INTERVAL => get(row, index, |v: WitInterval| Ok(DbValue::Interval(v.0)))?,
        _ => get(row, index, |v: RawValue| Ok(DbValue::Unsupported(v.0)))?,
    };
    Ok(value)
}

/// A parameter as tokio-postgres encodes it; `Err` names the malformed value.
pub fn parameter(value: &ParameterValue) -> anyhow::Result<Box<dyn ToSql + Send + Sync>> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(*v),
        ParameterValue::Int8(v) => Box::new(*v),
        ParameterValue::Int16(v) => Box::new(*v),
        ParameterValue::Int32(v) => Box::new(*v),
        ParameterValue::Int64(v) => Box::new(*v),
        ParameterValue::Floating32(v) => Box::new(*v),
        ParameterValue::Floating64(v) => Box::new(*v),
        ParameterValue::Str(v) => Box::new(v.clone()),
        ParameterValue::Binary(v) => Box::new(v.clone()),
        ParameterValue::Date((y, m, d)) => Box::new(date_from_wit(*y, *m, *d)?),
        ParameterValue::Time((h, m, s, ns)) => Box::new(time_from_wit(*h, *m, *s, *ns)?),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            Box::new(UtcDateTime(NaiveDateTime::new(
                date_from_wit(*y, *mo, *d)?,
                time_from_wit(*h, *mi, *s, *ns)?,
            )))
        }
        ParameterValue::Timestamp(seconds) => Box::new(UtcDateTime(
            DateTime::<Utc>::from_timestamp(*seconds, 0)
                .ok_or_else(|| anyhow!("invalid epoch timestamp {seconds}"))?
                .naive_utc(),
        )),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).with_context(|| format!("invalid UUID `{v}`"))?)
        }
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(v)
                .with_context(|| format!("invalid JSON `{}`", String::from_utf8_lossy(v)))?,
        ),
        ParameterValue::Decimal(v) => Box::new(decimal(v)?),
        ParameterValue::RangeInt32((low, high)) => Box::new(range_from_wit(low, high, |n| Ok(*n))?),
        ParameterValue::RangeInt64((low, high)) => Box::new(range_from_wit(low, high, |n| Ok(*n))?),
        ParameterValue::RangeDecimal((low, high)) => {
            Box::new(range_from_wit(low, high, |d| decimal(d).map(RangeDecimal))?)
        }
        ParameterValue::ArrayInt32(v) => Box::new(v.clone()),
        ParameterValue::ArrayInt64(v) => Box::new(v.clone()),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal).transpose())
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v.clone()),
        ParameterValue::Interval(v) => Box::new(WitInterval(*v)),
        ParameterValue::DbNull => Box::new(Null),
    })
}

fn decimal(text: &str) -> anyhow::Result<Decimal> {
    Decimal::from_str_exact(text).with_context(|| format!("invalid decimal `{text}`"))
}

fn date_from_wit(year: i32, month: u8, day: u8) -> anyhow::Result<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month.into(), day.into())
        .ok_or_else(|| anyhow!("invalid date {year}-{month}-{day}"))
}

fn time_from_wit(hour: u8, minute: u8, second: u8, nanos: u32) -> anyhow::Result<NaiveTime> {
    NaiveTime::from_hms_nano_opt(hour.into(), minute.into(), second.into(), nanos)
        .ok_or_else(|| anyhow!("invalid time {hour}:{minute}:{second}.{nanos:09}"))
}

fn date_to_wit(date: NaiveDate) -> anyhow::Result<(i32, u8, u8)> {
    Ok((
        date.year(),
        date.month().try_into()?,
        date.day().try_into()?,
    ))
}

fn time_to_wit(time: NaiveTime) -> anyhow::Result<(u8, u8, u8, u32)> {
    Ok((
        time.hour().try_into()?,
        time.minute().try_into()?,
        time.second().try_into()?,
        time.nanosecond(),
    ))
}

fn datetime_to_wit(value: NaiveDateTime) -> anyhow::Result<(i32, u8, u8, u8, u8, u8, u32)> {
    let (y, mo, d) = date_to_wit(value.date())?;
    let (h, mi, s, ns) = time_to_wit(value.time())?;
    Ok((y, mo, d, h, mi, s, ns))
}

type WitBound<T> = Option<(T, RangeBoundKind)>;

fn range_to_wit<T: PartialOrd + Normalizable, U>(
    range: &Range<T>,
    convert: impl Fn(&T) -> U,
) -> (WitBound<U>, WitBound<U>) {
    fn bound<S: BoundSided, T, U>(
        bound: &RangeBound<S, T>,
        convert: &impl Fn(&T) -> U,
    ) -> (U, RangeBoundKind) {
        let kind = match bound.type_ {
            BoundType::Inclusive => RangeBoundKind::Inclusive,
            BoundType::Exclusive => RangeBoundKind::Exclusive,
        };
        (convert(&bound.value), kind)
    }
    (
        range.lower().map(|b| bound(b, &convert)),
        range.upper().map(|b| bound(b, &convert)),
    )
}

fn range_from_wit<W, T: PartialOrd + Normalizable>(
    low: &WitBound<W>,
    high: &WitBound<W>,
    convert: impl Fn(&W) -> anyhow::Result<T>,
) -> anyhow::Result<Range<T>> {
    fn bound<S: BoundSided, W, T: PartialOrd>(
        (value, kind): &(W, RangeBoundKind),
        convert: &impl Fn(&W) -> anyhow::Result<T>,
    ) -> anyhow::Result<RangeBound<S, T>> {
        let kind = match kind {
            RangeBoundKind::Inclusive => BoundType::Inclusive,
            RangeBoundKind::Exclusive => BoundType::Exclusive,
        };
        Ok(RangeBound::new(convert(value)?, kind))
    }
    Ok(Range::new(
        low.as_ref().map(|b| bound(b, &convert)).transpose()?,
        high.as_ref().map(|b| bound(b, &convert)).transpose()?,
    ))
}

/// A `numeric` usable as a range bound (numeric ranges are continuous: no normalization).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RangeDecimal(Decimal);

impl Normalizable for RangeDecimal {
    fn normalize<S: BoundSided>(bound: RangeBound<S, Self>) -> RangeBound<S, Self> {
        bound
    }
}

impl<'a> FromSql<'a> for RangeDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Decimal::from_sql(ty, raw).map(Self)
    }
    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

impl ToSql for RangeDecimal {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }
    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }
    to_sql_checked!();
}

/// A date-time in UTC, accepted for both `timestamp` and `timestamptz` (the interface's
/// date-times carry no zone); both are microseconds since 2000-01-01 on the wire.
#[derive(Debug)]
struct UtcDateTime(NaiveDateTime);

impl ToSql for UtcDateTime {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(&Type::TIMESTAMP, out)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }
    to_sql_checked!();
}

/// `interval` in its binary form: microseconds, days, months.
#[derive(Debug)]
struct WitInterval(Interval);

impl<'a> FromSql<'a> for WitInterval {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let raw: [u8; 16] = raw
            .try_into()
            .map_err(|_| format!("interval of {} bytes, expected 16", raw.len()))?;
        let micros = i64::from_be_bytes(raw[0..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..16].try_into()?);
        Ok(Self(Interval {
            micros,
            days,
            months,
        }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

impl ToSql for WitInterval {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0.micros.to_be_bytes());
        out.extend_from_slice(&self.0.days.to_be_bytes());
        out.extend_from_slice(&self.0.months.to_be_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    to_sql_checked!();
}

/// SQL NULL, for a parameter of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _ty: &Type, _out: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// The raw binary value of a type the interface cannot represent.
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self(raw.to_vec()))
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_parameters_are_named() {
        let bad = [
            (
                ParameterValue::Decimal("12,5".into()),
                "invalid decimal `12,5`",
            ),
            (ParameterValue::Uuid("nope".into()), "invalid UUID `nope`"),
            (
                ParameterValue::Date((2024, 2, 30)),
                "invalid date 2024-2-30",
            ),
            (ParameterValue::Jsonb(b"{".to_vec()), "invalid JSON `{`"),
        ];
        for (value, expected) in bad {
            let error = parameter(&value).expect_err("should fail");
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn interval_round_trips_through_its_binary_form() {
        let interval = Interval {
            micros: -1_500_000,
            days: 3,
            months: 14,
        };
        let mut out = BytesMut::new();
        WitInterval(interval)
            .to_sql(&Type::INTERVAL, &mut out)
            .unwrap();
        let back = WitInterval::from_sql(&Type::INTERVAL, &out).unwrap();
        let Interval {
            micros,
            days,
            months,
        } = back.0;
        assert_eq!((micros, days, months), (-1_500_000, 3, 14));
    }
}

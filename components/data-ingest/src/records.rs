//! Ingested records: validation, storage (one atomic statement per request), and queries.

use guest_kit::{ApiError, ApiResult, Response, db, fields, json};
use http::StatusCode;
use serde_json::{Map, Value, json};
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

/// Records one `POST /api/v1/ingest` may carry.
pub const MAX_PER_INGEST: usize = 100;
/// Records one `POST /api/v1/ingest/batch` may carry.
pub const MAX_PER_BATCH: usize = 1000;
/// `recent` without `limit`, and its bounds.
const DEFAULT_RECENT: i64 = 10;
const MAX_RECENT: i64 = 100;
/// The most payload bytes one `recent` answer carries: a record may hold up to a request's 1 MiB,
/// and 100 of them would be more than an instance should hold (or the host hands over).
const MAX_RECENT_BYTES: i64 = 4 << 20;
/// Keys shown per dimension of `stats`: the largest groups (types and sources are free text).
const MAX_STATS_GROUPS: i64 = 100;

/// A validated record, ready to store.
struct Record {
    data_type: String,
    source: String,
    payload: String,
}

fn record(value: &Value) -> ApiResult<Record> {
    let Value::Object(object) = value else {
        return Err(ApiError::invalid(
            "record",
            format!("must be an object, got {}", fields::kind(value)),
        ));
    };
    let data_type = fields::text(object, "type", 50)?;
    let source = fields::optional_text(object, "source", 100, "api")?;
    let payload = match object.get("data") {
        None | Some(Value::Null) => return Err(ApiError::invalid("data", "is required")),
        Some(data) if fields::contains_nul(data) => {
            return Err(ApiError::invalid("data", "must not contain NUL characters"));
        }
        Some(data) => data.to_string(),
    };
    Ok(Record {
        data_type,
        source,
        payload,
    })
}

fn records(values: &[Value], field: &str, max: usize) -> ApiResult<Vec<Record>> {
    if values.is_empty() {
        return Err(ApiError::invalid(field, "must contain at least one record"));
    }
    if values.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} records per request, got {}", values.len()),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| record(value).map_err(|e| e.within(&format!("{field}[{i}]"))))
        .collect()
}

/// Stores every record in one statement (all or nothing); their ids, in request order.
async fn store(records: Vec<Record>) -> ApiResult<Vec<i64>> {
    let column = |f: fn(&Record) -> &String| {
        ParameterValue::ArrayStr(records.iter().map(|r| Some(f(r).clone())).collect())
    };
    let rows = db::query(
        "INSERT INTO ingested_data (data_type, source, payload) \
             SELECT t, s, p::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) \
                 WITH ORDINALITY AS r(t, s, p, n) ORDER BY n \
             RETURNING id",
        vec![
            column(|r| &r.data_type),
            column(|r| &r.source),
            column(|r| &r.payload),
        ],
    )
    .await?;
    Ok(rows.iter().filter_map(|row| row.get::<i64>("id")).collect())
}

/// `POST /api/v1/ingest`: an object is one record, an array several.
pub async fn ingest(request: Request) -> ApiResult<Response> {
    let body = guest_kit::request::json_body(request).await?;
    let records = match &body {
        Value::Array(values) => records(values, "body", MAX_PER_INGEST)?,
        single => vec![record(single)?],
    };
    let ids = store(records).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "status": "success", "ingested": ids.len(), "ids": ids }),
    ))
}

/// `POST /api/v1/ingest/batch`: `{"records": [...]}`.
pub async fn ingest_batch(request: Request) -> ApiResult<Response> {
    let body = guest_kit::request::json_object(request).await?;
    let values = match body.get("records") {
        Some(Value::Array(values)) => values,
        None | Some(Value::Null) => return Err(ApiError::invalid("records", "is required")),
        Some(other) => {
            return Err(ApiError::invalid(
                "records",
                format!("must be an array, got {}", fields::kind(other)),
            ));
        }
    };
    let ids = store(records(values, "records", MAX_PER_BATCH)?).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "status": "success", "batch_size": ids.len(), "ids": ids }),
    ))
}

/// `GET /api/v1/ingest/stats`.
pub async fn stats() -> ApiResult<Response> {
    let connection = db::connect().await?;
    let totals = connection
        .rows(
            "SELECT count(*) AS total, min(ingested_at) AS first, max(ingested_at) AS last \
         FROM ingested_data",
            vec![],
        )
        .await?;
    let groups = connection
        .rows(
            "(SELECT 'type' AS dimension, data_type AS key, count(*) AS n FROM ingested_data \
             GROUP BY data_type ORDER BY n DESC, key LIMIT $1) \
         UNION ALL \
         (SELECT 'source', source, count(*) AS n FROM ingested_data \
             GROUP BY source ORDER BY n DESC, source LIMIT $1)",
            vec![ParameterValue::Int64(MAX_STATS_GROUPS)],
        )
        .await?;
    let mut by_type = Map::new();
    let mut by_source = Map::new();
    for row in &groups {
        let (Some(dimension), Some(key), Some(n)) = (
            row.get::<String>("dimension"),
            row.get::<String>("key"),
            row.get::<i64>("n"),
        ) else {
            continue;
        };
        let target = if dimension == "type" {
            &mut by_type
        } else {
            &mut by_source
        };
        target.insert(key, n.into());
    }
    let total = totals.first();
    let time = |column: &str| {
        total
            .and_then(|row| row.get::<Option<_>>(column).flatten())
            .map(guest_kit::time::isoformat)
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "total_records": total.and_then(|row| row.get::<i64>("total")).unwrap_or(0),
            "by_type": by_type,
            "by_source": by_source,
            "first_ingested_at": time("first"),
            "last_ingested_at": time("last"),
        }),
    ))
}

/// `GET /api/v1/ingest/recent?limit=N`.
pub async fn recent(limit: Option<&str>) -> ApiResult<Response> {
    let limit = fields::limit(limit, DEFAULT_RECENT, MAX_RECENT)?;
    // The payload as PostgreSQL prints it, parsed here: `jsonb` keeps a number exactly and prints
    // it in full (`1.7976931348623157e308` as 309 digits), which a host's `jsonb` decoding may
    // refuse ("number out of range"), failing the whole query; serde_json's `float_roundtrip`
    // (this crate's Cargo.toml) reads every number the ingest accepted.
    // At most `limit` records, and no more once those before have reached MAX_RECENT_BYTES
    // (the newest always comes).
    let rows = db::query(
        "SELECT id, data_type, source, payload, ingested_at FROM ( \
             SELECT id, data_type, source, payload::text AS payload, ingested_at, \
                 sum(octet_length(payload::text)) OVER newest_first \
                     - octet_length(payload::text) AS before \
             FROM ingested_data WINDOW newest_first AS (ORDER BY ingested_at DESC, id DESC) \
             ORDER BY ingested_at DESC, id DESC LIMIT $1) page \
         WHERE before < $2 ORDER BY ingested_at DESC, id DESC",
        vec![
            ParameterValue::Int64(limit),
            ParameterValue::Int64(MAX_RECENT_BYTES),
        ],
    )
    .await?;
    let records: Vec<Value> = rows
        .iter()
        .map(|row| {
            let data = row
                .get::<String>("payload")
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or(Value::Null);
            json!({
                "id": row.get::<i64>("id"),
                "type": row.get::<String>("data_type"),
                "source": row.get::<String>("source"),
                "data": data,
                "ingested_at": row.get("ingested_at").map(guest_kit::time::isoformat),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "records": records, "count": records.len() }),
    ))
}

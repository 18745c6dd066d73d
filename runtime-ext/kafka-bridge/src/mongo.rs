//! MongoDB for components: a narrow, typed HTTP API over the collections the configuration
//! names (`POST /v1/mongo/{database}/{collection}/{insert|find|count|sum}`). Filters are field
//! equalities on scalars only, so no request can smuggle in an operator.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, IndexOptions, WriteConcern};
use mongodb::{Client, Collection, IndexModel};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Bridge;
use crate::config::{self, MongoConfig};
use crate::error::{ApiError, ApiResult};

/// How long an operation waits for a reachable server before it is a 503.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one API operation may take before it is a 503 (a hung server must not hang the
/// component's request, nor the consumer's delivery).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's error code for a duplicate key.
const DUPLICATE_KEY: i32 = 11000;
/// `find` returns at most this many documents.
pub const MAX_FIND_LIMIT: i64 = 10_000;
const DEFAULT_FIND_LIMIT: i64 = 1_000;
/// `find` sorts by at most this many fields.
const MAX_SORT_FIELDS: usize = 4;
/// Write errors that no retry can fix (BadValue, DocumentValidationFailure, key too large): the
/// request is refused (400). Any other write error may pass (a step-down, a timeout): 503.
const PERMANENT_WRITE_ERRORS: [i32; 4] = [2, 121, 10334, 17280];

/// A client for `mongodb.uri` (no connection is made until it is used).
pub async fn client(config: &MongoConfig) -> anyhow::Result<Option<Client>> {
    let Some(uri) = &config.uri else {
        return Ok(None);
    };
    let mut options = ClientOptions::parse(uri).await?;
    options.server_selection_timeout = Some(SERVER_SELECTION_TIMEOUT);
    options.connect_timeout = Some(SERVER_SELECTION_TIMEOUT);
    options.app_name = Some("kafka-bridge".into());
    let durability = &config.write_concern;
    options.write_concern = Some(
        WriteConcern::builder()
            .w(match durability.w.parse::<u32>() {
                Ok(nodes) => Acknowledgment::Nodes(nodes),
                Err(_) => Acknowledgment::Majority,
            })
            .journal(durability.journal)
            .w_timeout(Duration::from_millis(durability.timeout_ms))
            .build(),
    );
    Ok(Some(Client::with_options(options)?))
}

/// Creates each collection's indexes (unique on its key), retrying until MongoDB answers.
pub async fn create_indexes(client: Client, collections: Vec<config::Collection>) {
    let mut backoff = Duration::from_millis(200);
    for collection in collections {
        let handle: Collection<Document> = client
            .database(&collection.database)
            .collection(&collection.name);
        let mut indexes = vec![
            IndexModel::builder()
                .keys(doc! { &collection.key: 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        ];
        indexes.extend(
            collection
                .indexes
                .iter()
                .map(|field| IndexModel::builder().keys(doc! { field: 1 }).build()),
        );
        while let Err(error) = handle.create_indexes(indexes.clone()).await {
            tracing::warn!(%error, collection = collection.name, "creating indexes failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::info!(
            database = collection.database,
            collection = collection.name,
            "indexes ready"
        );
    }
}

/// Whether MongoDB answers a ping now.
pub async fn ping(client: &Client) -> bool {
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .is_ok()
}

/// Field names the API accepts: letters, digits and `_` (no `$` operators, no `.` paths).
pub fn check_field_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("may contain only letters, digits and `_`");
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertRequest {
    documents: Vec<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindRequest {
    #[serde(default)]
    filter: Map<String, Value>,
    /// Field names, `-` first for descending: `["timestamp", "-price"]`.
    #[serde(default)]
    sort: Vec<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    #[serde(default)]
    filter: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SumRequest {
    #[serde(default)]
    filter: Map<String, Value>,
    field: String,
}

type Target = Path<(String, String)>;

/// `insert`: adds documents, each identified by the collection's key; a document whose key is
/// already stored is left as stored (idempotent redelivery). Answers how many were new.
pub async fn insert(
    State(bridge): State<Arc<Bridge>>,
    Path((database, name)): Target,
    body: Result<Json<InsertRequest>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(request) = body?;
    let (collection, key) = bridge.collection(&database, &name, "insert")?;
    if request.documents.is_empty() {
        return Err(ApiError::invalid(
            "documents",
            "at least one document is required",
        ));
    }
    let mut documents = Vec::with_capacity(request.documents.len());
    for (index, document) in request.documents.into_iter().enumerate() {
        if !document.get(&key).is_some_and(is_scalar) {
            return Err(ApiError {
                message: format!("documents[{index}].{key}: required, a string or number"),
                ..ApiError::invalid("documents", "")
            });
        }
        documents.push(to_document(document).map_err(|e| {
            ApiError::invalid("documents", format!("[{index}] cannot be stored: {e}"))
        })?);
    }
    let total = documents.len();
    let result = bridge
        .bounded(&name, "insert", async {
            collection.insert_many(documents).ordered(false).await
        })
        .await?;
    let existing = match result {
        Ok(_) => 0,
        Err(error) => match *error.kind {
            ErrorKind::InsertMany(ref failure)
                if failure.write_concern_error.is_none()
                    && failure
                        .write_errors
                        .as_ref()
                        .is_some_and(|errors| errors.iter().all(|e| e.code == DUPLICATE_KEY)) =>
            {
                failure.write_errors.as_ref().map_or(0, Vec::len)
            }
            _ => return Err(bridge.mongo_failure(&name, "insert", error)),
        },
    };
    bridge.mongo_succeeded(&name, "insert");
    Ok(Json(
        json!({ "inserted": total - existing, "existing": existing }),
    ))
}

/// `find`: documents matching the filter (without `_id`), sorted, at most `limit`.
pub async fn find(
    State(bridge): State<Arc<Bridge>>,
    Path((database, name)): Target,
    body: Result<Json<FindRequest>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(request) = body?;
    let (collection, _) = bridge.collection(&database, &name, "find")?;
    let filter = filter(request.filter)?;
    let limit = request.limit.unwrap_or(DEFAULT_FIND_LIMIT);
    if !(1..=MAX_FIND_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_FIND_LIMIT}"),
        ));
    }
    if request.sort.len() > MAX_SORT_FIELDS {
        return Err(ApiError::invalid(
            "sort",
            format!("at most {MAX_SORT_FIELDS} fields"),
        ));
    }
    let mut sort = Document::new();
    for field in &request.sort {
        let (name, order) = field
            .strip_prefix('-')
            .map_or((field.as_str(), 1), |f| (f, -1));
        check_field_name(name).map_err(|problem| ApiError::invalid("sort", problem))?;
        sort.insert(name, order);
    }
    let found: Result<Vec<Document>, _> = bridge
        .bounded(&name, "find", async {
            collection
                .find(filter)
                .projection(doc! { "_id": 0 })
                .sort(sort)
                .limit(limit)
                .await?
                .try_collect()
                .await
        })
        .await?;
    let documents = found.map_err(|e| bridge.mongo_failure(&name, "find", e))?;
    bridge.mongo_succeeded(&name, "find");
    let documents: Vec<Value> = documents
        .into_iter()
        .map(|d| Bson::Document(d).into_relaxed_extjson())
        .collect();
    Ok(Json(json!({ "documents": documents })))
}

/// `count`: how many documents match the filter.
pub async fn count(
    State(bridge): State<Arc<Bridge>>,
    Path((database, name)): Target,
    body: Result<Json<CountRequest>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(request) = body?;
    let (collection, _) = bridge.collection(&database, &name, "count")?;
    let filter = filter(request.filter)?;
    let count = bridge
        .bounded(&name, "count", async {
            collection.count_documents(filter).await
        })
        .await?
        .map_err(|e| bridge.mongo_failure(&name, "count", e))?;
    bridge.mongo_succeeded(&name, "count");
    Ok(Json(json!({ "count": count })))
}

/// `sum`: the sum of a numeric field over the matching documents, and their count.
pub async fn sum(
    State(bridge): State<Arc<Bridge>>,
    Path((database, name)): Target,
    body: Result<Json<SumRequest>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(request) = body?;
    let (collection, _) = bridge.collection(&database, &name, "sum")?;
    check_field_name(&request.field).map_err(|problem| ApiError::invalid("field", problem))?;
    let pipeline = [
        doc! { "$match": filter(request.filter)? },
        doc! { "$group": {
            "_id": Bson::Null,
            "sum": { "$sum": format!("${}", request.field) },
            "count": { "$sum": 1 },
        } },
    ];
    let groups: Result<Vec<Document>, _> = bridge
        .bounded(&name, "sum", async {
            collection.aggregate(pipeline).await?.try_collect().await
        })
        .await?;
    let groups = groups.map_err(|e| bridge.mongo_failure(&name, "sum", e))?;
    bridge.mongo_succeeded(&name, "sum");
    let (sum, count) = groups
        .first()
        .map_or((Bson::Int32(0), Bson::Int32(0)), |g| {
            (
                g.get("sum").cloned().unwrap_or(Bson::Int32(0)),
                g.get("count").cloned().unwrap_or(Bson::Int32(0)),
            )
        });
    Ok(Json(json!({
        "sum": sum.into_relaxed_extjson(),
        "count": count.into_relaxed_extjson(),
    })))
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_))
}

/// An equality filter: every field name checked, every value a scalar (or null).
fn filter(fields: Map<String, Value>) -> ApiResult<Document> {
    let mut filter = Document::new();
    for (name, value) in fields {
        check_field_name(&name).map_err(|problem| ApiError {
            message: format!("filter.{name}: {problem}"),
            ..ApiError::invalid("filter", "")
        })?;
        if !(is_scalar(&value) || matches!(value, Value::Bool(_) | Value::Null)) {
            return Err(ApiError {
                message: format!("filter.{name}: must be a string, number, boolean or null"),
                ..ApiError::invalid("filter", "")
            });
        }
        let value = bson::to_bson(&value).map_err(|e| ApiError::invalid("filter", e))?;
        filter.insert(name, value);
    }
    Ok(filter)
}

fn to_document(fields: Map<String, Value>) -> Result<Document, bson::ser::Error> {
    bson::to_document(&fields)
}

impl Bridge {
    /// The configured collection `database.name` and its key field; 404 for any other.
    fn collection(
        &self,
        database: &str,
        name: &str,
        operation: &str,
    ) -> ApiResult<(Collection<Document>, String)> {
        let Some(config) = self.config.collection(database, name) else {
            return Err(ApiError::not_found(
                "collection",
                format!("collection `{database}.{name}` is not served by this bridge"),
            ));
        };
        let Some(client) = &self.mongo else {
            self.count_mongo(name, operation, "unavailable");
            return Err(ApiError::unavailable(
                "MongoDB is not configured (MONGODB_URI)",
            ));
        };
        if !self
            .indexes_ready
            .load(std::sync::atomic::Ordering::Acquire)
        {
            self.count_mongo(name, operation, "unavailable");
            return Err(ApiError::unavailable("MongoDB indexes are not created yet"));
        }
        Ok((
            client.database(database).collection(name),
            config.key.clone(),
        ))
    }

    /// Runs `work` within [`OPERATION_TIMEOUT`]; past it, MongoDB is unavailable (503).
    async fn bounded<T>(
        &self,
        collection: &str,
        operation: &str,
        work: impl Future<Output = mongodb::error::Result<T>>,
    ) -> ApiResult<mongodb::error::Result<T>> {
        tokio::time::timeout(OPERATION_TIMEOUT, work)
            .await
            .map_err(|_| {
                self.health.mongodb.set(false, &self.metrics);
                self.count_mongo(collection, operation, "unavailable");
                ApiError::unavailable(format!(
                    "MongoDB unavailable: no answer within {OPERATION_TIMEOUT:?}"
                ))
            })
    }

    fn count_mongo(&self, collection: &str, operation: &str, result: &str) {
        self.metrics
            .mongo_operations
            .with_label_values(&[collection, operation, result])
            .inc();
    }

    fn mongo_succeeded(&self, collection: &str, operation: &str) {
        self.health.mongodb.set(true, &self.metrics);
        self.count_mongo(collection, operation, "ok");
    }

    /// A write the server refused for the document's sake is a 400 (the component rejects the
    /// delivery and the bridge eventually dead-letters it); anything else is a 503.
    fn mongo_failure(
        &self,
        collection: &str,
        operation: &str,
        error: mongodb::error::Error,
    ) -> ApiError {
        let rejected = match &*error.kind {
            ErrorKind::Write(WriteFailure::WriteError(e)) => {
                PERMANENT_WRITE_ERRORS.contains(&e.code)
            }
            ErrorKind::InsertMany(failure) => {
                failure.write_concern_error.is_none()
                    && failure.write_errors.as_ref().is_some_and(|errors| {
                        errors
                            .iter()
                            .all(|e| PERMANENT_WRITE_ERRORS.contains(&e.code))
                    })
            }
            _ => false,
        };
        if rejected {
            self.count_mongo(collection, operation, "rejected");
            ApiError::invalid("documents", format!("MongoDB refused the write: {error}"))
        } else {
            self.health.mongodb.set(false, &self.metrics);
            self.count_mongo(collection, operation, "unavailable");
            ApiError::unavailable(format!("MongoDB unavailable: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_exclude_operators_and_paths() {
        assert!(check_field_name("userid").is_ok());
        assert!(check_field_name("$where").is_err());
        assert!(check_field_name("a.b").is_err());
        assert!(check_field_name("").is_err());
    }

    #[test]
    fn filters_take_scalars_only() {
        let ok: Map<String, Value> = serde_json::from_str(r#"{"userid": "u1", "n": 2}"#).unwrap();
        assert_eq!(filter(ok).unwrap(), doc! { "n": 2_i64, "userid": "u1" });
        let operator: Map<String, Value> =
            serde_json::from_str(r#"{"userid": {"$ne": null}}"#).unwrap();
        let error = filter(operator).unwrap_err();
        assert_eq!(error.field, Some("filter"));
        assert!(
            error.message.starts_with("filter.userid: "),
            "{}",
            error.message
        );
    }
}

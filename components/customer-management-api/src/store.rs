//! Purchases in MongoDB, through the kafka-bridge's MongoDB API.

use guest_kit::bridge::{Bridge, Delivered, Delivery};
use guest_kit::{ApiError, ApiResult, Response, Trace, json, variable};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How many purchases a query lists at most (the bridge's `find` limit); `count` and
/// `total_spent` always cover all of them.
const MAX_LISTED: usize = 10_000;

/// The highest price stored, as the customer web server accepts it (its `purchase::MAX_PRICE`):
/// sums of prices stay finite.
const MAX_PRICE: f64 = 1e12;

/// A purchase message as the customer web server publishes it; the stored document.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    purchase_id: String,
    username: String,
    userid: String,
    price: f64,
    timestamp: String,
}

struct Collection {
    database: String,
    name: String,
}

async fn collection() -> ApiResult<Collection> {
    Ok(Collection {
        database: variable("mongodb_database").await?,
        name: variable("mongodb_collection").await?,
    })
}

/// Stores a delivered batch. Every message is checked first: one that is not a purchase
/// rejects the batch with a 422 naming it (the bridge then retries messages one by one and
/// dead-letters the bad one), so nothing is half-stored. Redelivered purchases are kept once.
pub async fn save(delivery: &Delivery, trace: Trace) -> ApiResult<Value> {
    let mut documents = Vec::with_capacity(delivery.messages.len());
    for message in &delivery.messages {
        let purchase: Purchase = message.parse(&delivery.topic, "a purchase")?;
        if !(0.0..=MAX_PRICE).contains(&purchase.price) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{}: price must be a number from 0 to {MAX_PRICE}",
                    message.origin(&delivery.topic)
                ),
            ));
        }
        documents.push(purchase);
    }
    let target = collection().await?;
    let bridge = Bridge::from_variables(&trace).await?;
    bridge
        .mongo(
            &target.database,
            &target.name,
            "insert",
            &json!({ "documents": documents }),
        )
        .await
}

/// `{userid, purchases, count, total_spent}`, as the seed's management API answers.
pub async fn user_purchases(userid: &str, trace: &Trace) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct Found {
        documents: Vec<Value>,
    }
    #[derive(Deserialize)]
    struct Sum {
        sum: f64,
        count: u64,
    }
    let target = collection().await?;
    let bridge = Bridge::from_variables(trace).await?;
    let filter = json!({ "userid": userid });
    let found: Found = bridge
        .mongo(
            &target.database,
            &target.name,
            "find",
            &json!({ "filter": filter, "sort": ["timestamp", "purchase_id"], "limit": MAX_LISTED }),
        )
        .await?;
    let (total, count) = if found.documents.len() < MAX_LISTED {
        let total = found
            .documents
            .iter()
            .filter_map(|d| d["price"].as_f64())
            .sum();
        (total, found.documents.len() as u64)
    } else {
        let sum: Sum = bridge
            .mongo(
                &target.database,
                &target.name,
                "sum",
                &json!({ "filter": filter, "field": "price" }),
            )
            .await?;
        (sum.sum, sum.count)
    };
    Ok(json!({
        "userid": userid,
        "purchases": found.documents,
        "count": count,
        "total_spent": total_spent(total, count),
    }))
}

/// Python's `round(sum, 2)`: an integer 0 for no purchases, as `sum([])` is.
fn total_spent(total: f64, count: u64) -> Value {
    if count == 0 {
        return json!(0);
    }
    // Formatting rounds the exact binary value half-to-even, as Python's round() does.
    let rounded: f64 = format!("{total:.2}").parse().unwrap_or(total);
    json!(rounded)
}

/// The seed's health answer, with MongoDB's state from the bridge: 503 when it is not connected.
pub async fn health(trace: &Trace) -> Response {
    #[derive(Deserialize)]
    struct BridgeHealth {
        mongodb: String,
    }
    let mongodb = match Bridge::from_variables(trace).await {
        Ok(bridge) => bridge
            .call::<BridgeHealth>(http::Method::GET, "/health", None)
            .await
            .map(|h| h.mongodb)
            .unwrap_or_else(|e| format!("unknown ({})", e.message)),
        Err(e) => format!("unknown ({})", e.message),
    };
    if mongodb == "connected" {
        json(
            StatusCode::OK,
            &json!({ "status": "healthy", "mongodb": mongodb }),
        )
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unhealthy", "mongodb": mongodb }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::total_spent;

    #[test]
    fn rounds_like_python() {
        assert_eq!(total_spent(29.99 + 15.50 + 42.00, 3).to_string(), "87.49");
        assert_eq!(total_spent(0.0, 0).to_string(), "0");
        assert_eq!(total_spent(0.125, 1).to_string(), "0.12");
        assert_eq!(total_spent(2.675, 1).to_string(), "2.67");
    }
}

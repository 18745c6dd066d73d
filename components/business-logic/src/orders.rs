//! Order processing and the analytics summary.

use guest_kit::{ApiError, ApiResult, Response, db, fields, json};
use http::StatusCode;
use serde_json::json;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

/// `orders.amount` is `NUMERIC(12, 2)`: below a billion with cents.
const MAX_AMOUNT: f64 = 9_999_999_999.99;

/// `POST /api/v1/process/order`: records the order for an existing user, in one statement.
pub async fn process(request: Request) -> ApiResult<Response> {
    let body = guest_kit::request::json_object(request).await?;
    let user_id = fields::id(&body, "user_id")?;
    let amount = fields::positive_number(&body, "amount")?;
    let cents = (amount * 100.0).round();
    if cents < 1.0 {
        return Err(ApiError::invalid("amount", "must be at least 0.01"));
    }
    if amount > MAX_AMOUNT {
        return Err(ApiError::invalid(
            "amount",
            format!("must be at most {MAX_AMOUNT}"),
        ));
    }
    let rows = db::query(
        "INSERT INTO orders (user_id, amount) \
             SELECT id, $2 FROM users WHERE id = $1 \
             RETURNING id, user_id, amount, status, created_at",
        vec![
            ParameterValue::Int32(user_id),
            ParameterValue::Decimal(format!("{:.2}", cents / 100.0)),
        ],
    )
    .await?;
    let Some(order) = rows.first() else {
        return Err(ApiError::not_found(format!("user {user_id} not found")));
    };
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "order_id": order.get::<i32>("id"),
            "user_id": order.get::<i32>("user_id"),
            "amount": db::decimal(&order[2]),
            "status": order.get::<String>("status"),
            "created_at": order.get("created_at").map(guest_kit::time::isoformat),
        }),
    ))
}

/// `GET /api/v1/analytics/summary`: one consistent snapshot, in one query.
pub async fn summary() -> ApiResult<Response> {
    let rows = db::query(
        "SELECT (SELECT count(*) FROM users) AS total_users, \
                count(*) AS total_orders, \
                round(coalesce(sum(amount), 0), 2) AS total_revenue, \
                round(coalesce(avg(amount), 0), 2) AS average_order_value, \
                count(*) FILTER (WHERE created_at > (now() AT TIME ZONE 'utc') - interval '24 hours') \
                    AS orders_last_24h \
         FROM orders",
        vec![],
    )
    .await?;
    let row = rows.first().ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "summary returned no row")
    })?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "total_users": row.get::<i64>("total_users"),
            "total_orders": row.get::<i64>("total_orders"),
            "total_revenue": db::decimal(&row[2]),
            "average_order_value": db::decimal(&row[3]),
            "orders_last_24h": row.get::<i64>("orders_last_24h"),
            "generated_at": guest_kit::time::now(),
        }),
    ))
}

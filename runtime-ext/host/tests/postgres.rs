//! `spin:postgres@4.2.0` in the host, against the real PostgreSQL `cargo dev postgres` starts.

mod common;

use common::{AppDir, fixture, get_json, pg_port};

fn app() -> AppDir {
    let port = pg_port();
    AppDir::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "pg"
[variables]
pg_port = {{ default = "{port}" }}
[[trigger.http]]
route = "/..."
component = "pg"
[component.pg]
source = "{}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{{{{ pg_port }}}}"]
[component.pg.variables]
address = "postgres://postgres:postgres@127.0.0.1:{{{{ pg_port }}}}/postgres?sslmode=disable"
"#,
        fixture("pg")
    ))
}

#[tokio::test]
async fn every_interface_type_round_trips() {
    let app = app();
    let host = app.start(&[], &[]);
    let (status, json) = get_json(&host, "/types").await;
    assert_eq!(status, 200);
    let ok = &json["ok"];
    assert!(json["error"].is_null(), "{json}");
    let columns: Vec<&str> = ok["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let values: Vec<&str> = ok["rows"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected = [
        ("boolean:Boolean", "Boolean(true)"),
        ("int16:Int16", "Int16(-12)"),
        ("int32:Int32", "Int32(123456)"),
        ("int64:Int64", "Int64(-9000000000)"),
        ("floating32:Floating32", "Floating32(1.5)"),
        ("floating64:Floating64", "Floating64(2.25)"),
        ("str:Str", r#"Str("O'Brien; DROP TABLE x;--")"#),
        ("binary:Binary", "Binary([0, 1, 255])"),
        ("date:Date", "Date((2024, 2, 29))"),
        ("time:Time", "Time((13, 14, 15, 123456000))"),
        (
            "datetime:Datetime",
            "Datetime((2024, 12, 14, 21, 30, 0, 500000000))",
        ),
        (
            "datetimetz:Datetime",
            "Datetime((2024, 12, 14, 21, 30, 0, 0))",
        ),
        (
            "uuid:Uuid",
            r#"Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8")"#,
        ),
        (
            "jsonb:Jsonb",
            &format!("Jsonb({:?})", br#"{"a":[1,2]}"#.to_vec()),
        ),
        ("decimal:Decimal", r#"Decimal("12345.6789")"#),
        (
            "range32:RangeInt32",
            "RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((10, RangeBoundKind::Exclusive))))",
        ),
        (
            "range64:RangeInt64",
            "RangeInt64((Some((5, RangeBoundKind::Inclusive)), None))",
        ),
        (
            "rangedec:RangeDecimal",
            r#"RangeDecimal((Some(("1.5", RangeBoundKind::Exclusive)), Some(("2.5", RangeBoundKind::Inclusive))))"#,
        ),
        ("arr32:ArrayInt32", "ArrayInt32([Some(1), None, Some(3)])"),
        ("arr64:ArrayInt64", "ArrayInt64([Some(1099511627776)])"),
        (
            "arrdec:ArrayDecimal",
            r#"ArrayDecimal([Some("0.10"), None])"#,
        ),
        ("arrstr:ArrayStr", r#"ArrayStr([Some("x"), None])"#),
        (
            "interval:Interval",
            "Interval(Interval { micros: 1500000, days: 2, months: 3 })",
        ),
        ("null:Str", "DbNull"),
        ("timestamp:Datetime", "Datetime((1970, 1, 2, 0, 0, 0, 0))"),
        (
            r#"other:Other("inet")"#,
            "Unsupported([2, 32, 0, 4, 10, 0, 0, 1])",
        ),
    ];
    assert_eq!(columns.len(), expected.len(), "{columns:?}");
    for (i, (column, value)) in expected.iter().enumerate() {
        let (name, data_type) = column.split_once(':').unwrap();
        assert_eq!(columns[i], format!("{name}:DbDataType::{data_type}"));
        assert_eq!(values[i], format!("DbValue::{value}"), "column {name}");
    }
}

#[tokio::test]
async fn server_errors_reach_the_guest_structured_with_the_servers_message() {
    let app = app();
    let host = app.start(&[], &[]);
    let (_, json) = get_json(&host, "/error").await;
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("QueryFailed(QueryError::DbError"), "{error}");
    assert!(error.contains(r#"code: "42P01""#), "{error}");
    assert!(
        error.contains(r#"message: "relation \"no_such_table\" does not exist""#),
        "{error}"
    );
}

#[tokio::test]
async fn addresses_outside_allowed_outbound_hosts_are_refused_before_dialling() {
    let app = app();
    let host = app.start(&[], &[]);
    let started = std::time::Instant::now();
    let (_, json) = get_json(&host, "/denied").await;
    assert_eq!(
        json["error"],
        r#"PgError(Error::ConnectionFailed("address postgres://10.255.255.1:5432 is not permitted"))"#
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// The values of one row of `path`'s answer, as the guest printed them.
async fn row(host: &common::Host, path: &str) -> Vec<String> {
    let (status, json) = get_json(host, path).await;
    assert_eq!(status, 200);
    assert!(json["error"].is_null(), "{json}");
    json["ok"]["rows"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// What our encoding of each parameter means to PostgreSQL, in its own words: not only our
/// converter both ways.
#[tokio::test]
async fn parameters_are_the_values_postgresql_stores() {
    let app = app();
    let host = app.start(&[], &[]);
    let text = |value: &str| format!(r#"DbValue::Str({value:?})"#);
    assert_eq!(
        row(&host, "/stored").await,
        [
            text("3 mons 2 days 00:00:01.5"),
            text("[1,10)"),
            text("(1.5,2.5]"),
            text("12345.6789"),
            text("2024-12-14 21:30:00.5"),
            text(r#"{"a": [1, 2]}"#),
            text("{1,NULL,3}"),
            text(r"\x0001ff"),
            text("1970-01-02 00:00:00"),
        ]
    );
}

/// Values PostgreSQL produces itself (not values we encoded), as the guest decodes them. (A
/// `'NaN'::numeric` fails its query, as in Spin: both decode `numeric` with rust_decimal. An
/// empty range has no form of its own in the interface: it reads as the unbounded one.)
#[tokio::test]
async fn values_postgresql_produces_decode_to_what_they_are() {
    let app = app();
    let host = app.start(&[], &[]);
    assert_eq!(
        row(&host, "/server").await,
        [
            "DbValue::Interval(Interval { micros: 7384500000, days: 1, months: 0 })",
            "DbValue::Interval(Interval { micros: 0, days: 0, months: -14 })",
            "DbValue::RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((10, RangeBoundKind::Exclusive))))",
            "DbValue::RangeInt64((None, Some((6, RangeBoundKind::Exclusive))))",
            r#"DbValue::RangeDecimal((Some(("1.5", RangeBoundKind::Exclusive)), Some(("2.5", RangeBoundKind::Inclusive))))"#,
            r#"DbValue::Decimal("1.10")"#,
            r#"DbValue::Decimal("-0.000123")"#,
            "DbValue::ArrayInt32([Some(1), None, Some(3)])",
            "DbValue::Date((2024, 2, 29))",
            "DbValue::Time((23, 59, 59, 999999000))",
            "DbValue::Datetime((2024, 12, 14, 19, 30, 0, 500000000))",
            &format!("DbValue::Jsonb({:?})", br#"{"a":null,"b":[1,2]}"#.to_vec()),
        ]
    );
}

#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_before_the_connection_is_reused() {
    let app = app();
    let host = app.start(&[], &[]);
    let (_, json) = get_json(&host, "/open-transaction").await;
    assert_eq!(json["ok"]["state"], "left open", "{json}");
    let open_on = json["ok"]["pid"].clone();
    // Later requests get the pooled connection again (the same server process): the
    // uncommitted row must never show up.
    let mut reused = 0;
    for _ in 0..5 {
        let (_, json) = get_json(&host, "/count").await;
        let row = &json["ok"]["rows"][0];
        assert_eq!(row[0], "DbValue::Int64(0)", "{json}");
        reused += usize::from(row[1] == open_on);
    }
    assert!(
        reused > 0,
        "no later request ran on the connection left in a transaction ({open_on})"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_a_quick_connection_failure() {
    let app = app();
    let host = app.start(&[], &[("SPIN_VARIABLE_PG_PORT", "1")]);
    let (_, json) = get_json(&host, "/count").await;
    let error = json["error"].as_str().unwrap();
    assert!(
        error.starts_with("PgError(Error::ConnectionFailed("),
        "{error}"
    );
    assert!(error.contains("onnection refused"), "{error}");
}

/// Every address the driver would dial is checked, `hostaddr` included: with a permitted `host`
/// and a `hostaddr` elsewhere, and with `hostaddr` alone, nothing is dialled.
#[tokio::test]
async fn hostaddr_is_checked_against_allowed_outbound_hosts_too() {
    let app = app();
    let host = app.start(&[], &[]);
    let port = pg_port();
    let connect = |address: String| {
        let url = format!("{}/connect", host.base);
        async move {
            let response = common::client()
                .get(url)
                .header("x-address", address)
                .send()
                .await
                .unwrap();
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    for address in [
        format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres?hostaddr=10.255.255.1"),
        format!("host=127.0.0.1 hostaddr=10.255.255.1 port={port} user=postgres dbname=postgres"),
        format!("hostaddr=10.255.255.1 port={port} user=postgres dbname=postgres"),
    ] {
        let started = std::time::Instant::now();
        let json = connect(address.clone()).await;
        assert_eq!(
            json["error"],
            format!(
                r#"PgError(Error::ConnectionFailed("address postgres://10.255.255.1:{port} is not permitted"))"#
            ),
            "{address}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
    // A `hostaddr` that is permitted still connects.
    let json = connect(format!(
        "postgres://postgres:postgres@127.0.0.1:{port}/postgres?hostaddr=127.0.0.1&sslmode=disable"
    ))
    .await;
    assert!(json["error"].is_null(), "{json}");
}

/// A statement whose instance is abandoned at the request deadline does not run on in
/// PostgreSQL: the host cancels it.
#[tokio::test]
async fn an_abandoned_statement_is_cancelled_in_postgresql() {
    let app = app();
    let host = app.start(&["--request-timeout", "1s"], &[]);
    let (status, _) = common::get(&host, "/sleep").await;
    assert_eq!(status, 504);
    let client = common::pg_connect("postgres", "postgres", "postgres").await;
    let running = || async {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND query LIKE '%fixture-pg abandoned%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned pg_sleep(20) still runs in PostgreSQL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A result larger than the host buffers for a guest (100 rows of 1 MiB) is refused with a
/// clear error, and the host's memory does not grow by the result's size.
#[tokio::test]
async fn a_result_too_large_is_refused_and_the_host_stays_small() {
    let app = app();
    let host = app.start(&[], &[]);
    assert_eq!(get_json(&host, "/types").await.0, 200);
    let peak = |host: &common::Host| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", host.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            / 1024
    };
    let before = peak(&host);
    let (status, json) = get_json(&host, "/big").await;
    assert_eq!(status, 200);
    let error = json["error"].as_str().unwrap_or_default();
    assert!(error.contains("the result is too large"), "{json}");
    let grown = peak(&host) - before;
    println!("peak RSS {before} MiB, grown by {grown} MiB for a 100 MiB result");
    assert!(grown < 64, "the host's peak RSS grew by {grown} MiB");
    assert_eq!(get_json(&host, "/types").await.0, 200, "the host serves on");
}

/// A statement the server refuses has ended: its connection goes back to the pool, not closed
/// as an abandoned one is.
#[tokio::test]
async fn a_failed_statement_keeps_its_connection() {
    let app = app();
    let host = app.start(&[], &[]);
    let pid = || async { row(&host, "/pid").await };
    let before = pid().await;
    let (_, json) = get_json(&host, "/divide").await;
    assert!(json["error"].as_str().unwrap().contains("22012"), "{json}");
    assert_eq!(pid().await, before, "the connection was replaced");
}

//! The bridge binary refuses to start with a secret that is published, short, or the same for
//! both directions, and says which and why.

use std::process::Command;

const STRONG: &str = "4a7d1ed414474e4033ac29ccb8653d9b";
const OTHER: &str = "b0f00a0860303ae22b998861bce3b28f";

/// Runs the bridge on the project's `kafka-bridge.toml` with these secrets: its exit status
/// and its error output.
fn start(secret: &str, delivery_secret: &str) -> (bool, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new(env!("CARGO_BIN_EXE_kafka-bridge"))
        .args(["--config", "kafka-bridge.toml"])
        .current_dir(root)
        .env("KAFKA_BRIDGE_SECRET", secret)
        .env("KAFKA_BRIDGE_DELIVERY_SECRET", delivery_secret)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn known_short_or_shared_secrets_stop_the_bridge_at_start_up() {
    for (secret, delivery_secret, expected) in [
        ("dev-secret", OTHER, "KAFKA_BRIDGE_SECRET is a published"),
        (
            STRONG,
            "replace-me-too-with-openssl-rand-hex-32",
            "KAFKA_BRIDGE_DELIVERY_SECRET is a published",
        ),
        ("0123456789abcdef", OTHER, "at least 32"),
        (STRONG, STRONG, "must differ"),
    ] {
        let (started, stderr) = start(secret, delivery_secret);
        assert!(!started, "started with {secret} / {delivery_secret}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

//! The HTTP surface through a real listener and a real client.

use std::collections::BTreeSet;

use serde_json::Value;
use teleport_discord::http::ROUTES;

use crate::support::{ADMIN_TOKEN, TestApp, promtool_check};

fn with_admin(extra: &str) -> String {
    format!("{extra}\n[http]\nadmin_token = \"{ADMIN_TOKEN}\"\n")
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::start("").await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ok");

    // Ready once the watch is initialised and Discord accepted the token.
    app.wait_ready().await;
    let body: Value = app.get("/readyz").await.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    for c in ["teleport", "discord"] {
        assert_eq!(body["components"][c]["ready"], true, "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text() {
    let app = TestApp::start("").await;
    app.wait_ready().await;
    // Generate some traffic so the HTTP families have samples.
    let _ = app.get("/healthz").await;
    let _ = app.get("/nope").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.expect("text");
    for needle in [
        "teleport_discord_build_info{",
        "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "http_request_duration_seconds_bucket{",
        "teleport_discord_ready{component=\"teleport\"}",
        "teleport_discord_reconcile_queue_depth ",
        "teleport_watch_connected",
        "teleport_discord_config_last_reload_successful 1",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains("test-bot-token-XYZ"), "secret in metrics");
    if let Some(out) = promtool_check(&text) {
        assert!(
            out.status.success(),
            "promtool check metrics failed:\nstdout: {}\nstderr: {}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Prometheus asks for OpenMetrics and gets it.
    let r = app
        .client
        .get(app.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
        )
        .send()
        .await
        .expect("GET");
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ct}"
    );
    let om = r.text().await.expect("text");
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert!(om.contains("# TYPE http_requests counter"), "{om}");
    app.stop().await;
}

#[tokio::test]
async fn reload_applies_a_valid_config() {
    let app = TestApp::start(&with_admin("")).await;
    app.rewrite_config(&with_admin(
        "ops = \"2222222222\"\n[log]\nseverity = \"debug\"",
    ));
    let r = app.reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "reloaded");
    assert_eq!(
        body["changed"],
        serde_json::json!(["role_to_recipients", "log.severity"])
    );
    assert_eq!(body["restart_required"], serde_json::json!([]));

    // Unchanged file: nothing changed.
    let body: Value = app
        .reload(Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["changed"], serde_json::json!([]));

    let text = app.get("/metrics").await.text().await.expect("text");
    assert!(
        text.contains(
            "teleport_discord_config_reloads_total{result=\"success\",trigger=\"http\"} 2"
        ),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_reload_keeps_the_running_config() {
    let app = TestApp::start(&with_admin("")).await;
    // New file: broken severity, missing "*", and a different admin token.
    app.rewrite_config_raw(
        "[teleport]\nidentity = \"/x\"\n[discord]\ntoken = \"t\"\n[role_to_recipients]\ndev = \"1\"\n[log]\nseverity = \"loud\"\n[http]\nadmin_token = \"another-admin-token-0123\"\n",
    );
    let r = app.reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("running config is unchanged")),
        "{body}"
    );
    let details: Vec<String> = body["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d.as_str().map(str::to_owned))
        .collect();
    assert!(
        details.iter().any(|d| d.contains("`log.severity`")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("role_to_recipients[*]")),
        "{details:?}"
    );

    // The old admin token still works, the new one does not: the old config runs.
    assert_eq!(
        app.reload(Some("another-admin-token-0123")).await.status(),
        401
    );
    app.rewrite_config(&with_admin(""));
    assert_eq!(app.reload(Some(ADMIN_TOKEN)).await.status(), 200);

    let text = app.get("/metrics").await.text().await.expect("text");
    assert!(
        text.contains(
            "teleport_discord_config_reloads_total{result=\"failure\",trigger=\"http\"} 1"
        ),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn syntax_error_reload_is_refused() {
    let app = TestApp::start(&with_admin("")).await;
    app.rewrite_config_raw("[teleport\n");
    let r = app.reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["details"][0]
            .as_str()
            .is_some_and(|d| d.contains("not valid TOML")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn reload_requires_the_admin_token() {
    let app = TestApp::start(&with_admin("")).await;
    let r = app.reload(None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing bearer token")),
        "{body}"
    );
    let r = app.reload(Some("test-admin-token-012345678")).await;
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(app.url("/admin/reload"))
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn admin_is_disabled_without_a_token() {
    let app = TestApp::start("").await;
    let r = app.reload(Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("disabled")),
        "{body}"
    );
    assert!(
        body["details"][0]
            .as_str()
            .is_some_and(|e| e.contains("TELEPORT_DISCORD_ADMIN_TOKEN")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_are_json() {
    let app = TestApp::start(&with_admin("")).await;
    let r = app.get("/does-not-exist").await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("/does-not-exist")),
        "{body}"
    );

    let r = app
        .client
        .delete(app.url("/healthz"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("DELETE")),
        "{body}"
    );

    let r = app
        .client
        .post(app.url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .body(vec![b'x'; teleport_discord::http::BODY_LIMIT + 1])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 413);
    app.stop().await;
}

/// The routes the router serves, the `ROUTES` table and `openapi.yaml` agree.
#[tokio::test]
async fn router_and_openapi_agree() {
    let spec_text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&spec_text).expect("valid YAML");
    let spec = &docs[0];
    assert_eq!(spec["openapi"].as_str(), Some("3.1.0"));
    let mut in_spec = BTreeSet::new();
    for (path, item) in spec["paths"].as_hash().expect("paths") {
        for (method, op) in item.as_hash().expect("path item") {
            let method = method.as_str().expect("method").to_ascii_uppercase();
            let path = path.as_str().expect("path").to_owned();
            assert!(
                op["responses"].as_hash().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            in_spec.insert((method, path));
        }
    }
    let in_code: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(in_spec, in_code, "openapi.yaml and http::ROUTES differ");

    // Every listed route is served (not the 404/405 fallbacks), and each path
    // refuses the methods it does not list.
    let app = TestApp::start(&with_admin("")).await;
    for (method, path) in &in_code {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = app
            .client
            .request(m, app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        let status = r.status();
        // The interactions endpoint answers its own 404 while it is off.
        let off = path == "/discord/interactions"
            && status == 404
            && r.text()
                .await
                .is_ok_and(|t| t.contains("[discord] public_key"));
        assert!(
            off || (status != 404 && status != 405),
            "{method} {path} -> {status}"
        );
        let other = [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
        ]
        .into_iter()
        .find(|m| !in_code.contains(&(m.as_str().to_owned(), path.clone())))
        .expect("a method the path does not serve");
        let r = app
            .client
            .request(other.clone(), app.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 405, "{other} {path}");
    }
    app.stop().await;
}

//! `/api/openapi.json`: a valid OpenAPI 3.1 document that describes every `/api` route. The
//! router and the document come from one list (`routes::api_router`); these tests check the
//! document's structure, that every documented operation is really routed, and that nothing
//! is routed under `/api` around that list.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::TestApp;

const ROUTES_SOURCE: &str = include_str!("../../src/routes/mod.rs");

async fn document(app: &TestApp) -> Value {
    let res = reqwest::get(app.url("/api/openapi.json")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    res.json().await.unwrap()
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every `{"$ref": …}` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_structurally_valid_openapi_3_1() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["info"]["version"].as_str().is_some_and(|v| !v.is_empty()));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        assert!(path.starts_with("/api/"), "{path}");
        let templated: BTreeSet<&str> =
            path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        let item = item.as_object().unwrap();
        assert!(item.keys().any(|k| METHODS.contains(&k.as_str())), "{path} has operations");
        for (method, op) in item {
            assert!(METHODS.contains(&method.as_str()), "{path}: unexpected key {method}");
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: responses"));
            assert!(!responses.is_empty(), "{method} {path}: at least one response");
            for (status, response) in responses {
                assert!(status == "default" || status.len() == 3, "{method} {path}: status {status}");
                assert!(response["description"].is_string(), "{method} {path} {status}: a description");
            }
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{method} {path}: path parameters are required");
                    p["name"].as_str().unwrap()
                })
                .collect();
            assert_eq!(declared, templated, "{method} {path}: every path parameter is declared");
            if let Some(id) = op["operationId"].as_str() {
                assert!(operation_ids.insert(id.to_string()), "{method} {path}: operationId {id} is unique");
            }
        }
    }
    // Every reference resolves to a schema in the document.
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("local schema ref: {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{r} resolves");
    }
    for scheme in ["api_token", "session"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme} is defined");
    }
}

/// Every documented operation is routed: none meets the `/api` fallback or a 405.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let client = reqwest::Client::new();
    let mut probed = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "00000000-0000-4000-8000-000000000000" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res =
                client.request(method.clone(), app.url(&concrete)).header("Origin", &app.origin).send().await.unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is routed for that method");
            assert!(!body.contains("There is no such API route"), "{method} {path} is routed: {status} {body}");
            probed += 1;
        }
    }
    assert!(probed >= 30, "{probed} operations");
    // And the fallback really answers that way, so the check above can fail.
    let res = client.get(app.url("/api/not-a-route")).send().await.unwrap();
    assert!(res.text().await.unwrap().contains("There is no such API route"));
}

/// The `/api` router is built only from documented handlers: `api_router` uses `routes!`
/// (which takes only `#[utoipa::path]` handlers) and never a bare `.route(`, `.merge(` or
/// `.nest(`, and the document has exactly one operation per handler listed there.
#[test]
fn no_api_route_is_added_around_the_document() {
    let start = ROUTES_SOURCE.find("fn api_router()").expect("api_router in routes/mod.rs");
    let body = &ROUTES_SOURCE[start..];
    let body = &body[..body.find("\n}\n").expect("end of api_router")];
    for bypass in [".route(", ".route_service(", ".merge(", ".nest(", ".nest_service("] {
        assert!(!body.contains(bypass), "api_router must not use {bypass}: it would route without a description");
    }
    let handlers: usize = body
        .match_indices("routes!(")
        .map(|(i, _)| {
            let list = &body[i + "routes!(".len()..];
            list[..list.find(')').unwrap()].split(',').filter(|h| !h.trim().is_empty()).count()
        })
        .sum();
    let doc = serde_json::to_value(gateway::routes::openapi()).unwrap();
    let operations: usize =
        doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(operations, handlers, "one documented operation per routed handler");
}

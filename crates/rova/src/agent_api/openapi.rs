//! The agent API's OpenAPI 3.1 document, generated from the message types
//! themselves ([`super::types`], through `schemars`) and the table of
//! routes below. `docs/agent-api.openapi.json` is this document as
//! committed; a test fails when the two differ (regenerate it with
//! `ROVA_WRITE_OPENAPI=1 cargo nextest run -p rova --lib openapi`).

use super::pki::Issued;
use super::types::*;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

/// Which listener serves a route.
#[derive(Clone, Copy)]
enum Side {
    /// A control replica's `--agent-listen`.
    Control,
    /// An agent's `--listen`.
    Agent,
}

/// One route: its path, who serves it, what it is for, whether a caller
/// without a client certificate may use it, and the schemas of its body
/// and answer.
struct Route {
    path: &'static str,
    side: Side,
    summary: &'static str,
    open: bool,
    request: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    response: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

fn schema<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

fn routes() -> Vec<Route> {
    vec![
        Route {
            path: ENROLL,
            side: Side::Control,
            summary: "Redeem a one-time enrollment token for a client certificate over the agent's own key (the one request open without a client certificate).",
            open: true,
            request: schema::<EnrollRequest>,
            response: schema::<Issued>,
        },
        Route {
            path: REGISTER,
            side: Side::Control,
            summary: "Register the host the caller's certificate names: its compute service, its hypervisor and inventory, where its listener is. The answer lists the servers evacuated away from it while it was gone.",
            open: false,
            request: schema::<RegisterRequest>,
            response: schema::<Registered>,
        },
        Route {
            path: HEARTBEAT,
            side: Side::Control,
            summary: "One heartbeat of the caller's compute service. 404 when the host is not registered (the agent registers again).",
            open: false,
            request: schema::<HeartbeatRequest>,
            response: schema::<HeartbeatReply>,
        },
        Route {
            path: CLEANED,
            side: Side::Control,
            summary: "The caller destroyed its copies of these evacuated servers: their evacuations are completed.",
            open: false,
            request: schema::<Cleaned>,
            response: schema::<Cleaned>,
        },
        Route {
            path: ENV,
            side: Side::Control,
            summary: "A question of the caller's QEMU driver about its guests (an image, a server's record, the servers on its host, guest facts, networks, ports, routers) or a report about its own host (a guest that powered off); the answer comes from the database.",
            open: false,
            request: schema::<EnvRequest>,
            response: schema::<EnvReply>,
        },
        Route {
            path: DRIVER,
            side: Side::Agent,
            summary: "A driver call from a control replica (only a certificate naming rova-control may call). A request id seen before gets the first call's outcome again.",
            open: false,
            request: schema::<DriverRequest>,
            response: schema::<DriverReply>,
        },
    ]
}

/// The document.
pub fn document() -> Value {
    let mut g = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    for r in routes() {
        let request = (r.request)(&mut g);
        let response = (r.response)(&mut g);
        let (server, tag) = match r.side {
            Side::Control => ("control replica (--agent-listen)", "control"),
            Side::Agent => ("agent (--listen)", "agent"),
        };
        let mut op = json!({
            "tags": [tag],
            "summary": r.summary,
            "description": format!("Served by the {server}."),
            "requestBody": {"required": true, "content": {"application/json": {"schema": request}}},
            "responses": {
                "200": {"description": "Done.", "content": {"application/json": {"schema": response}}},
                "400": {"description": "A malformed body.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "No client certificate (or a token that is not valid).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            }
        });
        if !r.open {
            op["security"] = json!([{"mutualTLS": []}]);
        }
        paths.insert(r.path.to_string(), json!({ "post": op }));
    }
    let error = |what: &str| json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    paths.insert(
        IMAGE_FILE.to_string(),
        json!({
            "get": {
                "tags": ["control"],
                "summary": "An active image's bytes, for the caller's image cache.",
                "description": "Served by the control replica (--agent-listen).",
                "parameters": id,
                "security": [{"mutualTLS": []}],
                "responses": {
                    "200": {"description": "The bytes.", "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                    "404": error("No such active image."),
                }
            },
            "put": {
                "tags": ["control"],
                "summary": "A disk the caller exported (snapshot, backup, shelve) becomes the data of an image that waits for it.",
                "description": "Served by the control replica (--agent-listen).",
                "parameters": [
                    id[0].clone(),
                    {"name": "virtual_size", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}
                ],
                "security": [{"mutualTLS": []}],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                "responses": {
                    "200": {"description": "Stored; the image is active.", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "409": error("The image no longer waits for data (deleted meanwhile)."),
                }
            }
        }),
    );
    paths.insert(
        INSTANCE_FILE.to_string(),
        json!({
            "get": {
                "tags": ["agent"],
                "summary": "Up to FILE_CHUNK (16 MiB) bytes of a guest's file from `offset`: a disk, its config drive or console history, root.json (the root disk's virtual size and backing image) or base-IMAGE (a cached image). Read by the agent of the destination of a move of that guest from this host when their instances paths are not shared; the control plane confirms the move (EnvRequest may_copy).",
                "description": "Served by the agent (--listen).",
                "parameters": [
                    {"name": "uuid", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}
                ],
                "security": [{"mutualTLS": []}],
                "responses": {
                    "200": {"description": "The bytes (fewer than FILE_CHUNK: the end of the file).", "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                    "403": error("The caller is not the destination of a move of that guest from this host."),
                    "404": error("No such file of that guest here."),
                }
            }
        }),
    );
    paths.insert(
        CONSOLE.to_string(),
        json!({
            "get": {
                "tags": ["agent"],
                "summary": "A guest's console (kind `serial` or `vnc`) for a control replica's console proxy: the request asks to switch protocols (`Connection: upgrade`, `Upgrade: rova-console`), and the connection then carries the bytes of the guest's serial port or RFB both ways until either side ends.",
                "description": "Served by the agent (--listen).",
                "parameters": [
                    {"name": "uuid", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "kind", "in": "path", "required": true, "schema": {"type": "string", "enum": ["serial", "vnc"]}}
                ],
                "security": [{"mutualTLS": []}],
                "responses": {
                    "101": {"description": "Switched to rova-console: the console's bytes follow."},
                    "400": error("No `Upgrade: rova-console`."),
                    "403": error("The caller is not a control replica."),
                    "404": error("No guest of that instance runs here (or no such kind)."),
                    "502": error("The guest's console socket does not answer."),
                }
            }
        }),
    );
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({
            "description": "Nova's error body: one key (badRequest, unauthorized, forbidden, itemNotFound, ...) holding the code and the message.",
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                "required": ["code", "message"]
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Rova agent API",
            "version": "1",
            "description": "Between Rova's control replicas and the agents on hypervisor hosts: JSON over HTTP/1.1 in mutually authenticated TLS under the cloud's own CA. Generated from crates/rova/src/agent_api/types.rs."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"mutualTLS": {"type": "mutualTLS", "description": "A client certificate from the cloud's CA: an agent's names its host, a control replica's names rova-control."}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = "../../docs/agent-api.openapi.json";

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        let generated = format!(
            "{}\n",
            serde_json::to_string_pretty(&document()).expect("json")
        );
        if std::env::var("ROVA_WRITE_OPENAPI").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &generated).expect("writing the document");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/agent-api.openapi.json differs from the agent API's types: \
             regenerate it with ROVA_WRITE_OPENAPI=1 cargo nextest run -p rova --lib openapi"
        );
    }

    #[test]
    fn every_route_and_message_is_described() {
        let doc = document();
        for path in [ENROLL, REGISTER, HEARTBEAT, CLEANED, ENV, DRIVER] {
            assert!(doc["paths"][path]["post"].is_object(), "{path}");
        }
        assert!(doc["paths"][IMAGE_FILE]["get"].is_object());
        assert!(doc["paths"][IMAGE_FILE]["put"].is_object());
        assert!(doc["paths"][INSTANCE_FILE]["get"].is_object());
        assert!(doc["paths"][CONSOLE]["get"].is_object());
        let schemas = &doc["components"]["schemas"];
        for name in [
            "EnrollRequest",
            "RegisterRequest",
            "DriverRequest",
            "DriverReply",
            "EnvRequest",
            "EnvReply",
            "Error",
        ] {
            assert!(schemas[name].is_object(), "{name}");
        }
        // A driver call names its kind; an operation its own.
        let text = doc.to_string();
        assert!(text.contains("\"live_migrate\""), "DriverCall variants");
        assert!(text.contains("\"Evacuate\""), "DriverOp variants");
    }
}

//! What every service's published contract says besides what poem-openapi
//! derives, written once:
//!
//! - [`Problems`]: an operation's error side, `Result<T, Problems<{ E401 | E404 }>>`.
//!   The const parameter lists the statuses the operation answers with a problem,
//!   and each is documented as its own response with the problem+json body and
//!   its headers (`WWW-Authenticate` on 401, `Allow` on 405, `Retry-After` on
//!   503, `ETag` on 412). Handlers keep returning [`Problem`] inside; `?` converts.
//! - [`ApiContract`]: a service's OpenAPI `links` (poem-openapi cannot state them).
//! - [`served_spec`]: the document a service serves at `/openapi.yaml` and
//!   commits as `services/<name>/openapi.yaml`: poem-openapi's, with response
//!   headers spelled as HTTP spells them (`Location`, not `LOCATION`), the
//!   unknown-member policy stated (`additionalProperties: false` on every
//!   schema a request body uses), and the links added.
//!
//! # Policies the contracts state (one for every service)
//! - Unknown request members are refused: 400 `bad-request` (every request
//!   object is `deny_unknown_fields`, and its schema says `additionalProperties:
//!   false`). A duplicate member name anywhere in a JSON body is a 400 too
//!   ([`crate::edge::StrictJson`]). Responses may gain members: clients ignore
//!   the ones they do not know.
//! - Optional response members are absent, never `null` (every response object
//!   is `skip_serializing_if_is_none`; no schema is `nullable`).
//! - A rule a request breaks is a 422 `validation-failed` naming the `field`
//!   (poem-openapi's validator refusals are mapped so in
//!   [`crate::problem::problem_from_error`]); a request that cannot be read is
//!   a 400 `bad-request`.

use poem::Error;
use poem::http::StatusCode;
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, OpenApi, OpenApiService};
use serde_yaml::{Mapping, Value};

use crate::problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemDetails};

/// 400: the request cannot be read (syntax, missing or unknown members, duplicate keys).
pub const E400: u32 = 1 << 0;
/// 401: no valid bearer token (with `WWW-Authenticate`).
pub const E401: u32 = 1 << 1;
/// 403: the token's roles do not allow this.
pub const E403: u32 = 1 << 2;
/// 404: no such resource (or one the caller may not see).
pub const E404: u32 = 1 << 3;
/// 405: the path exists, the method does not (with `Allow`).
pub const E405: u32 = 1 << 4;
/// 409: conflicts with the resource's state.
pub const E409: u32 = 1 << 5;
/// 412: `If-Match` failed (with the current `ETag` when there is an item).
pub const E412: u32 = 1 << 6;
/// 413: the body is over `http.max_body_bytes`.
pub const E413: u32 = 1 << 7;
/// 415: the body is not `application/json`.
pub const E415: u32 = 1 << 8;
/// 422: a value breaks a rule of the contract (or a business rule).
pub const E422: u32 = 1 << 9;
/// 503: a dependency is unavailable; retry after `Retry-After` seconds.
pub const E503: u32 = 1 << 10;

/// What every operation may answer whatever it does: 405 on its path.
pub const ANY: u32 = E405;
/// What every operation with a JSON body may answer besides: unreadable (400),
/// too large (413), not JSON (415), breaking a rule (422).
pub const BODY: u32 = E400 | E413 | E415 | E422;

/// (bit, status, description) of every documented error status.
const STATUSES: [(u32, u16, &str); 11] = [
    (E400, 400, "The request cannot be read: bad JSON or parameter syntax, a missing or unknown member, a duplicate key (`bad-request`)."),
    (E401, 401, "No valid bearer token (`unauthenticated`)."),
    (E403, 403, "The token's roles do not allow this (`forbidden`)."),
    (E404, 404, "No such resource, or one the caller may not see (`not-found`)."),
    (E405, 405, "The path does not take this method (`method-not-allowed`); `Allow` lists the ones it takes."),
    (E409, 409, "The request conflicts with the resource's current state (the `type` says how)."),
    (E412, 412, "`If-Match` does not match the current entity tag (`precondition-failed`)."),
    (E413, 413, "The body is larger than the service accepts (`payload-too-large`)."),
    (E415, 415, "The body is not `application/json` (`unsupported-media-type`)."),
    (
        E422,
        422,
        "A value breaks a rule (`validation-failed` with the `field`, `invalid-cursor`, `idempotency-key-reused`, or a type of the operation's own).",
    ),
    (E503, 503, "A dependency is unavailable; retry after `Retry-After` seconds."),
];

/// The error side of an operation: a [`Problem`], documented as one response
/// per status in `M` (an `|` of [`E400`] ... [`E503`]).
#[derive(Debug)]
pub struct Problems<const M: u32>(pub Problem);

impl<const M: u32> From<Problem> for Problems<M> {
    fn from(p: Problem) -> Self {
        if M & bit(p.status()) == 0 {
            // The contract does not list this answer: a bug to fix in the
            // operation's `Problems<...>` (schemathesis finds it too).
            tracing::warn!(status = p.status().as_u16(), problem = p.kind().slug(), "problem status not in the operation's contract");
        }
        Self(p)
    }
}

impl<const M: u32> From<Problems<M>> for Error {
    fn from(p: Problems<M>) -> Self {
        p.0.into()
    }
}

/// The bit of `status`, 0 for one no operation documents (500).
fn bit(status: StatusCode) -> u32 {
    STATUSES.iter().find(|(_, s, _)| *s == status.as_u16()).map_or(0, |(b, _, _)| *b)
}

fn string_schema(pattern: Option<&str>) -> MetaSchemaRef {
    let mut s = MetaSchema::new("string");
    s.pattern = pattern.map(str::to_owned);
    MetaSchemaRef::Inline(Box::new(s))
}

fn header(name: &str, description: &str, required: bool, pattern: Option<&str>) -> MetaHeader {
    MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required,
        deprecated: false,
        schema: string_schema(pattern),
    }
}

fn headers_of(status: u16) -> Vec<MetaHeader> {
    match status {
        401 => vec![header("WWW-Authenticate", "The bearer challenge (RFC 6750).", true, None)],
        405 => vec![header("Allow", "The methods the path takes.", true, None)],
        412 => vec![header("ETag", "The item's current entity tag, when the item exists.", false, None)],
        503 => vec![header("Retry-After", "Seconds to wait before retrying.", true, Some("^[1-9][0-9]*$"))],
        _ => Vec::new(),
    }
}

impl<const M: u32> ApiResponse for Problems<M> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: STATUSES
                .iter()
                .filter(|(b, _, _)| M & b != 0)
                .map(|(_, status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType { content_type: PROBLEM_CONTENT_TYPE, schema: ProblemDetails::schema_ref() }],
                    headers: headers_of(*status),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ProblemDetails::register(registry);
    }
}

/// An OpenAPI link: after `operation` answered `status`, `target` can be
/// called with `parameters` taken from that answer (runtime expressions such
/// as `$response.body#/id`).
#[derive(Debug, Clone)]
pub struct Link {
    pub operation: &'static str,
    pub status: u16,
    pub name: &'static str,
    pub target: &'static str,
    pub parameters: &'static [(&'static str, &'static str)],
    pub description: &'static str,
}

/// What a service's contract says that poem-openapi does not derive.
pub trait ApiContract {
    /// The service's links; none unless it says so.
    fn links() -> Vec<Link> {
        Vec::new()
    }
}

/// Header names as HTTP spells them (poem-openapi upper-cases them).
const HEADER_SPELLING: [&str; 5] = ["Location", "ETag", "WWW-Authenticate", "Allow", "Retry-After"];

/// The document the service serves and commits (see the module docs).
pub fn served_spec<T: OpenApi + ApiContract>(api: &OpenApiService<T, ()>) -> String {
    let raw = api.spec_yaml();
    match serde_yaml::from_str::<Value>(&raw) {
        Ok(mut doc) => {
            finish(&mut doc, &T::links());
            serde_yaml::to_string(&doc).unwrap_or(raw)
        }
        Err(_) => raw,
    }
}

/// The post-processing of [`served_spec`], on a parsed document.
pub fn finish(doc: &mut Value, links: &[Link]) {
    let mut request_schemas = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_mapping_mut) {
        for (_, item) in paths.iter_mut() {
            let Some(item) = item.as_mapping_mut() else { continue };
            for (_, op) in item.iter_mut() {
                collect_refs(op.get("requestBody").unwrap_or(&Value::Null), &mut request_schemas);
                let Some(responses) = op.get_mut("responses").and_then(Value::as_mapping_mut) else { continue };
                for (_, resp) in responses.iter_mut() {
                    if let Some(headers) = resp.get_mut("headers").and_then(Value::as_mapping_mut) {
                        *headers = headers
                            .iter()
                            .map(|(k, v)| {
                                let name = k.as_str().unwrap_or_default();
                                let spelled = HEADER_SPELLING.iter().find(|h| h.eq_ignore_ascii_case(name)).map_or(name, |h| *h);
                                (Value::from(spelled), v.clone())
                            })
                            .collect();
                    }
                }
            }
        }
    }
    // Every schema a request body reaches refuses members it does not list.
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = request_schemas.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(schema) = doc.get_mut("components").and_then(|c| c.get_mut("schemas")).and_then(|s| s.get_mut(name.as_str())) else {
            continue;
        };
        collect_refs(schema, &mut request_schemas);
        if schema.get("type").and_then(Value::as_str) == Some("object")
            && let Some(m) = schema.as_mapping_mut()
        {
            m.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    for link in links {
        let Some(resp) = operation_mut(doc, link.operation)
            .and_then(|op| op.get_mut("responses"))
            .and_then(|r| r.get_mut(link.status.to_string().as_str()))
            .and_then(Value::as_mapping_mut)
        else {
            continue;
        };
        let links = resp.entry("links".into()).or_insert_with(|| Value::Mapping(Mapping::new()));
        let mut l = Mapping::new();
        l.insert("operationId".into(), link.target.into());
        l.insert("parameters".into(), Value::Mapping(link.parameters.iter().map(|(k, v)| (Value::from(*k), Value::from(*v))).collect()));
        l.insert("description".into(), link.description.into());
        if let Some(m) = links.as_mapping_mut() {
            m.insert(link.name.into(), Value::Mapping(l));
        }
    }
}

/// The component names `$ref`ed anywhere inside `v`.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, x) in m {
                if k.as_str() == Some("$ref")
                    && let Some(name) = x.as_str().and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(name.to_owned());
                }
                collect_refs(x, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn operation_mut<'a>(doc: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    doc.get_mut("paths")?
        .as_mapping_mut()?
        .iter_mut()
        .flat_map(|(_, item)| item.as_mapping_mut().into_iter().flat_map(|m| m.iter_mut().map(|(_, op)| op)))
        .find(|op| op.get("operationId").and_then(Value::as_str) == Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_bit_is_documented_once() {
        let meta = Problems::<{ E400 | E401 | E405 | E503 }>::meta();
        let statuses: Vec<_> = meta.responses.iter().filter_map(|r| r.status).collect();
        assert_eq!(statuses, [400, 401, 405, 503]);
        assert_eq!(meta.responses[1].headers[0].name, "WWW-Authenticate");
        assert_eq!(meta.responses[2].headers[0].name, "Allow");
        assert_eq!(meta.responses[3].headers[0].name, "Retry-After");
        let mut bits: Vec<u32> = STATUSES.iter().map(|(b, _, _)| *b).collect();
        bits.dedup();
        assert_eq!(bits.len(), STATUSES.len());
        assert_eq!(bit(StatusCode::INTERNAL_SERVER_ERROR), 0);
    }

    #[test]
    fn finish_spells_headers_closes_request_schemas_and_adds_links() {
        let mut doc: Value = serde_yaml::from_str(
            r##"
paths:
  /things:
    post:
      operationId: make
      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/MakeRequest'}}}}
      responses:
        '201': {description: made, headers: {LOCATION: {schema: {type: string}}}}
  /things/{id}:
    get: {operationId: get, responses: {'200': {description: ok}}}
components:
  schemas:
    MakeRequest: {type: object, properties: {part: {$ref: '#/components/schemas/Part'}}}
    Part: {type: object, properties: {n: {type: integer}}}
    Thing: {type: object, properties: {id: {type: string}}}
"##,
        )
        .unwrap();
        let links = [Link {
            operation: "make",
            status: 201,
            name: "GetThing",
            target: "get",
            parameters: &[("id", "$response.body#/id")],
            description: "the thing made",
        }];
        finish(&mut doc, &links);
        let made = &doc["paths"]["/things"]["post"]["responses"]["201"];
        assert!(made["headers"].get("Location").is_some());
        assert_eq!(made["links"]["GetThing"]["operationId"], "get");
        assert_eq!(made["links"]["GetThing"]["parameters"]["id"], "$response.body#/id");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["MakeRequest"]["additionalProperties"], false);
        assert_eq!(schemas["Part"]["additionalProperties"], false);
        assert!(schemas["Thing"].get("additionalProperties").is_none(), "response-only schemas stay open");
    }
}

//! `glasshouse-apigw`: the Amazon API Gateway HTTP API definition of the public
//! edge, generated from the services' contracts (`services/*/openapi.yaml`), so
//! the edge is contract-first like the services.
//!
//! Every operation that requires a bearer token in its service's contract is
//! published at the edge; an operation without one (Inventory's catalog reads,
//! which only Order's identity may call in the mesh) is not. Each published
//! operation gets:
//! - `x-amazon-apigateway-integration`: an HTTP proxy through a VPC link to the
//!   ALB listener in front of the Istio ingress gateway (`deploy/helm`, `alb.*`);
//!   the Istio gateway routes by path to the service;
//! - `security` naming the JWT authorizer (`x-amazon-apigateway-authorizer`,
//!   type `jwt`, the token in `Authorization`) with the services' issuer and
//!   audience. Roles (admin writes) are checked behind it by Istio and the service.
//!
//! Deployment-specific values (VPC link id, listener ARN, issuer, audience, TLS
//! name) are flags whose defaults are `${GH_...}` placeholders, so the committed
//! file is one template: fill it with `envsubst` or the IaC tool's template
//! function, or generate a filled copy with the flags.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::args::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// The services whose contracts make up the edge, in output order.
pub const SERVICES: [&str; 3] = ["order", "inventory", "notification"];
/// The committed output, relative to the repository root.
pub const OUTPUT: &str = "deploy/aws/apigateway-http-api.yaml";
/// The name of the JWT authorizer (a security scheme of the output).
pub const AUTHORIZER: &str = "glasshouse-jwt";
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// What varies per deployment.
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeParams {
    /// The VPC link (HTTP API, `AWS::ApiGatewayV2::VpcLink`) id.
    #[arg(long, default_value = "${GH_VPC_LINK_ID}")]
    pub vpc_link_id: String,
    /// The ARN of the ALB listener in front of the Istio ingress gateway.
    #[arg(long, default_value = "${GH_ALB_LISTENER_ARN}")]
    pub listener_arn: String,
    /// The host name on the ALB's certificate (API Gateway verifies it).
    #[arg(long, default_value = "${GH_EDGE_HOSTNAME}")]
    pub server_name: String,
    /// The token issuer (`auth.issuer` of the services and the chart).
    #[arg(long, default_value = "${GH_JWT_ISSUER}")]
    pub issuer: String,
    /// The token audience (`auth.audience`).
    #[arg(long, default_value = "${GH_JWT_AUDIENCE}")]
    pub audience: String,
}

impl Default for EdgeParams {
    fn default() -> Self {
        Self {
            vpc_link_id: "${GH_VPC_LINK_ID}".into(),
            listener_arn: "${GH_ALB_LISTENER_ARN}".into(),
            server_name: "${GH_EDGE_HOSTNAME}".into(),
            issuer: "${GH_JWT_ISSUER}".into(),
            audience: "${GH_JWT_AUDIENCE}".into(),
        }
    }
}

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(name = "glasshouse-apigw", version, about = "Generate the API Gateway HTTP API definition from services/*/openapi.yaml")]
pub struct Cli {
    /// The repository root (where `services/` is).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Write here (default: the committed file, deploy/aws/apigateway-http-api.yaml; `-` for stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not write: compare with the output file and exit 1 when it differs.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub params: EdgeParams,
}

/// A contract that cannot be turned into the edge definition.
#[derive(Debug, thiserror::Error)]
pub enum ApigwError {
    #[error("read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not YAML: {source}")]
    Parse { path: String, source: serde_yaml::Error },
    #[error("{path}: {what}")]
    Contract { path: String, what: String },
    #[error("{method} {route} is in both {first} and {second}")]
    Duplicate { method: String, route: String, first: String, second: String },
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

/// Reads one service's contract.
pub fn read_contract(repo: &Path, service: &str) -> Result<Value, ApigwError> {
    let rel = format!("services/{service}/openapi.yaml");
    let text = std::fs::read_to_string(repo.join(&rel)).map_err(|source| ApigwError::Read { path: rel.clone(), source })?;
    serde_yaml::from_str(&text).map_err(|source| ApigwError::Parse { path: rel, source })
}

/// The edge definition from the contracts of [`SERVICES`] under `repo`.
pub fn generate(repo: &Path, params: &EdgeParams) -> Result<Value, ApigwError> {
    let contracts = SERVICES.iter().map(|svc| Ok((*svc, read_contract(repo, svc)?))).collect::<Result<Vec<_>, ApigwError>>()?;
    generate_from(&contracts, params)
}

/// [`generate`] over already parsed contracts (`(service, document)`).
pub fn generate_from(contracts: &[(&str, Value)], params: &EdgeParams) -> Result<Value, ApigwError> {
    let mut paths = Mapping::new();
    let mut owner: Vec<(String, String, String)> = Vec::new();
    for (service, doc) in contracts {
        let rel = format!("services/{service}/openapi.yaml");
        let bad = |what: String| ApigwError::Contract { path: rel.clone(), what };
        let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
        if !version.starts_with("3.") {
            return Err(bad(format!("openapi version {version:?}: expected 3.x")));
        }
        let src_paths = doc.get("paths").and_then(Value::as_mapping).ok_or_else(|| bad("no paths".into()))?;
        for (route, item) in src_paths {
            let route = route.as_str().ok_or_else(|| bad("a path that is not a string".into()))?;
            let item = item.as_mapping().ok_or_else(|| bad(format!("{route}: not a mapping")))?;
            // Path-level parameters apply to every operation of the path.
            let shared = item.get("parameters").and_then(Value::as_sequence).cloned().unwrap_or_default();
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let protected = op.get("security").and_then(Value::as_sequence).is_some_and(|s| !s.is_empty());
                if !protected {
                    continue;
                }
                if let Some((_, _, first)) = owner.iter().find(|(m, r, _)| m == method && r == route) {
                    return Err(ApigwError::Duplicate {
                        method: method.to_uppercase(),
                        route: route.to_owned(),
                        first: first.clone(),
                        second: rel.clone(),
                    });
                }
                owner.push((method.to_owned(), route.to_owned(), rel.clone()));
                let entry = paths.entry(s(route)).or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Some(m) = entry.as_mapping_mut() {
                    m.insert(s(method), operation(service, method, op, &shared, params));
                }
            }
        }
    }
    let scheme = map([
        ("type", s("oauth2")),
        ("flows", Value::Mapping(Mapping::new())),
        (
            "x-amazon-apigateway-authorizer",
            map([
                ("type", s("jwt")),
                ("identitySource", s("$request.header.Authorization")),
                ("jwtConfiguration", map([("issuer", s(&params.issuer)), ("audience", Value::Sequence(vec![s(&params.audience)]))])),
            ]),
        ),
    ]);
    Ok(map([
        ("openapi", s("3.0.1")),
        (
            "info",
            map([
                ("title", s("Glasshouse public API")),
                ("version", s(&edge_version(contracts))),
                (
                    "description",
                    s("GENERATED by glasshouse-apigw from services/*/openapi.yaml: do not edit. Amazon API Gateway HTTP API: \
                       each operation is proxied through a VPC link to the ALB in front of the Istio ingress gateway, \
                       behind a JWT authorizer. Regenerate: cargo run -p glasshouse-ops --bin glasshouse-apigw"),
                ),
            ]),
        ),
        ("paths", Value::Mapping(paths)),
        ("components", map([("securitySchemes", map([(AUTHORIZER, scheme)]))])),
    ]))
}

/// The versions of the contracts, joined (`order 1.0.0, inventory 1.0.0, ...`).
fn edge_version(contracts: &[(&str, Value)]) -> String {
    contracts
        .iter()
        .map(|(svc, doc)| format!("{svc} {}", doc.get("info").and_then(|i| i.get("version")).and_then(Value::as_str).unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn operation(service: &str, method: &str, op: &Value, shared: &[Value], params: &EdgeParams) -> Value {
    let mut out = Mapping::new();
    for key in ["operationId", "summary"] {
        if let Some(v) = op.get(key) {
            out.insert(s(key), v.clone());
        }
    }
    // Path parameters only (the route template needs them declared); query and
    // header parameters are passed through and checked by the service.
    let path_params: Vec<Value> = shared
        .iter()
        .chain(op.get("parameters").and_then(Value::as_sequence).into_iter().flatten())
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("path"))
        .map(|p| {
            let mut m = Mapping::new();
            for key in ["name", "in", "required", "schema"] {
                if let Some(v) = p.get(key) {
                    m.insert(s(key), v.clone());
                }
            }
            Value::Mapping(m)
        })
        .collect();
    if !path_params.is_empty() {
        out.insert(s("parameters"), Value::Sequence(path_params));
    }
    out.insert(
        s("responses"),
        map([("default", map([("description", s(&format!("The {service} service's response (services/{service}/openapi.yaml)")))]))]),
    );
    out.insert(s("security"), Value::Sequence(vec![map([(AUTHORIZER, Value::Sequence(vec![]))])]));
    out.insert(s("x-glasshouse-service"), s(service));
    out.insert(
        s("x-amazon-apigateway-integration"),
        map([
            ("type", s("http_proxy")),
            ("httpMethod", s(&method.to_uppercase())),
            ("connectionType", s("VPC_LINK")),
            ("connectionId", s(&params.vpc_link_id)),
            ("uri", s(&params.listener_arn)),
            ("tlsConfig", map([("serverNameToVerify", s(&params.server_name))])),
            ("payloadFormatVersion", s("1.0")),
        ]),
    );
    Value::Mapping(out)
}

/// The YAML text written to the output file.
pub fn render(doc: &Value) -> Result<String, serde_yaml::Error> {
    Ok(format!(
        "# GENERATED by glasshouse-apigw from services/*/openapi.yaml: do not edit.\n\
         # Regenerate: cargo run -p glasshouse-ops --bin glasshouse-apigw\n\
         # Fill the ${{GH_...}} placeholders (envsubst, or your IaC's template function), then import:\n\
         #   aws apigatewayv2 import-api --body file://filled.yaml\n{}",
        serde_yaml::to_string(doc)?
    ))
}

/// The CLI: exit 0 written / up to date, 1 drift (`--check`), 2 bad input.
pub fn main_with(args: Vec<std::ffi::OsString>) -> i32 {
    let cli: Cli = match crate::args::parse_or_exit(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let doc = match generate(&cli.repo, &cli.params) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("glasshouse-apigw: {e}");
            return EXIT_USAGE;
        }
    };
    let text = match render(&doc) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("glasshouse-apigw: {e}");
            return EXIT_USAGE;
        }
    };
    let out = cli.out.unwrap_or_else(|| cli.repo.join(OUTPUT));
    if cli.check {
        let current = std::fs::read_to_string(&out).ok().and_then(|t| serde_yaml::from_str::<Value>(&t).ok());
        if current.as_ref() == Some(&doc) {
            return EXIT_OK;
        }
        eprintln!(
            "glasshouse-apigw: {} differs from a fresh generation; regenerate: cargo run -p glasshouse-ops --bin glasshouse-apigw",
            out.display()
        );
        return EXIT_FAILED;
    }
    if out.as_os_str() == "-" {
        print!("{text}");
        return EXIT_OK;
    }
    match std::fs::write(&out, text) {
        Ok(()) => {
            eprintln!("wrote {}", out.display());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("glasshouse-apigw: write {}: {e}", out.display());
            EXIT_USAGE
        }
    }
}

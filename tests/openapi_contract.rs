//! Contract between `openapi.yaml` and the function app: every HTTP function
//! (`functions/*/function.json` with an `httpTrigger`) is documented once per method, under its
//! URL path, with its function name as `operationId` (`Name.method` for a function serving
//! several methods), and nothing else is; and every operation but `Health` requires the bearer
//! token (admin routes with the `admin` role).
//!
//! The spec is read with `yaml-rust2` (a maintained YAML 1.2 parser). What the spec promises
//! beyond routes and security (schemas, statuses, problem types, links) is proven against the
//! running server by schemathesis (`scripts/schemathesis.sh`, run by `.ci/run`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The HTTP functions that need no token: the health probe, the published contract and the
/// player page with its sign-in settings.
const ANONYMOUS_FUNCTIONS: &[&str] = &["Health", "OpenApi", "WebRoot", "WebPage", "WebConfig"];

/// `(path, method, operationId)`, e.g. `("/api/quizzes/{date}", "get", "QuizByDate")`.
type Operation = (String, String, String);

/// One security requirement: scheme name and roles (`- bearerAuth: [admin]`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    scheme: String,
    roles: Vec<String>,
}

#[derive(Debug, Default)]
struct SpecOperation {
    path: String,
    method: String,
    operation_id: Option<String>,
    /// `None`: not declared (the global requirement applies); `Some(vec![])`: `security: []`.
    security: Option<Vec<Requirement>>,
}

#[derive(Debug, Default)]
struct Spec {
    operations: Vec<SpecOperation>,
    global_security: Option<Vec<Requirement>>,
    /// Security schemes with `type: http` and `scheme: bearer`.
    bearer_schemes: BTreeSet<String>,
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// functions/*/function.json

/// The URL path of a route: `/` + routePrefix + route, with `{name:constraint}` and `{name?}`
/// reduced to `{name}` as OpenAPI spells path parameters.
fn url_path(prefix: &str, route: &str) -> String {
    let mut path = String::from("/");
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() {
        path.push_str(prefix);
        path.push('/');
    }
    let route = route.trim_start_matches('/');
    let mut chars = route.chars();
    while let Some(c) = chars.next() {
        if c != '{' {
            path.push(c);
            continue;
        }
        let inner: String = chars.by_ref().take_while(|&c| c != '}').collect();
        // `{x:maxlength(0)?}` matches only the empty segment: the path ends before it.
        if inner.contains(":maxlength(0)") {
            continue;
        }
        let name = inner
            .split(':')
            .next()
            .unwrap_or("")
            .trim_end_matches('?')
            .trim_start_matches('*');
        path.push('{');
        path.push_str(name);
        path.push('}');
    }
    path
}

fn route_prefix() -> String {
    let text = std::fs::read_to_string(repo_root().join("host.json")).expect("read host.json");
    let host: serde_json::Value = serde_json::from_str(&text).expect("host.json is JSON");
    host.pointer("/extensions/http/routePrefix")
        .and_then(|v| v.as_str())
        .unwrap_or("api")
        .to_owned()
}

/// Every (path, method, operationId) the function app serves over HTTP.
fn function_operations() -> BTreeSet<Operation> {
    let prefix = route_prefix();
    let dir = repo_root().join("functions");
    let mut folders: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("function.json").is_file())
        .collect();
    folders.sort();
    assert!(!folders.is_empty(), "no functions/*/function.json found");
    let mut ops = BTreeSet::new();
    for folder in folders {
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 function name")
            .to_owned();
        let file = folder.join("function.json");
        let text = std::fs::read_to_string(&file).expect("read function.json");
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        if json.get("disabled").and_then(|d| d.as_bool()) == Some(true) {
            continue;
        }
        let bindings = json
            .get("bindings")
            .and_then(|b| b.as_array())
            .unwrap_or_else(|| panic!("{} has no bindings array", file.display()));
        for b in bindings {
            if b.get("type").and_then(|t| t.as_str()) != Some("httpTrigger") {
                continue;
            }
            let route = b
                .get("route")
                .and_then(|r| r.as_str())
                .unwrap_or(&name)
                .to_owned();
            let methods: Vec<String> = b
                .get("methods")
                .and_then(|m| m.as_array())
                .map(|m| {
                    m.iter()
                        .filter_map(|v| v.as_str())
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                !methods.is_empty(),
                "functions/{name}/function.json: list the HTTP methods explicitly so the \
                 OpenAPI document can name each one"
            );
            let path = url_path(&prefix, &route);
            for method in &methods {
                let operation_id = if methods.len() == 1 {
                    name.clone()
                } else {
                    format!("{name}.{method}")
                };
                ops.insert((path.clone(), method.clone(), operation_id));
            }
        }
    }
    ops
}

// ---------------------------------------------------------------------------------------------
// openapi.yaml, read line by line

/// One security requirement list from YAML (`[{bearerAuth: [admin]}]`).
fn requirements(v: &Yaml) -> Option<Vec<Requirement>> {
    let list = v.as_vec()?;
    Some(
        list.iter()
            .filter_map(Yaml::as_hash)
            .flat_map(|h| h.iter())
            .map(|(scheme, roles)| Requirement {
                scheme: scheme.as_str().unwrap_or_default().to_owned(),
                roles: roles
                    .as_vec()
                    .map(|r| {
                        r.iter()
                            .filter_map(Yaml::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect(),
    )
}

fn parse_spec(text: &str) -> Spec {
    let docs = YamlLoader::load_from_str(text).expect("openapi.yaml is valid YAML");
    let doc = &docs[0];
    let mut spec = Spec {
        global_security: requirements(&doc["security"]),
        ..Spec::default()
    };
    if let Some(paths) = doc["paths"].as_hash() {
        for (path, item) in paths {
            let path = path.as_str().unwrap_or_default().to_owned();
            let Some(item) = item.as_hash() else { continue };
            for (method, op) in item {
                let method = method.as_str().unwrap_or_default();
                if !HTTP_METHODS.contains(&method) {
                    continue;
                }
                spec.operations.push(SpecOperation {
                    path: path.clone(),
                    method: method.to_owned(),
                    operation_id: op["operationId"].as_str().map(str::to_owned),
                    security: requirements(&op["security"]),
                });
            }
        }
    }
    if let Some(schemes) = doc["components"]["securitySchemes"].as_hash() {
        for (name, scheme) in schemes {
            if scheme["type"].as_str() == Some("http")
                && scheme["scheme"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
            {
                spec.bearer_schemes
                    .insert(name.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    spec
}

/// Path keys under `paths:` that appear twice: a YAML parser keeps only one of them, so they
/// are counted in the text (two spaces of indentation, a leading `/`).
fn duplicate_path_keys(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    text.lines()
        .filter(|l| l.starts_with("  /") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').to_owned())
        .filter(|p| !seen.insert(p.clone()))
        .collect()
}

fn load_spec() -> Spec {
    parse_spec(&spec_text())
}

fn spec_text() -> String {
    let path = repo_root().join("openapi.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn listing<'a>(ops: impl IntoIterator<Item = &'a Operation>) -> String {
    let mut s = String::new();
    for (path, method, id) in ops {
        let _ = writeln!(s, "    {method:<7} {path:<40} operationId: {id}");
    }
    if s.is_empty() {
        s.push_str("    (none)\n");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The contract

#[test]
fn openapi_documents_exactly_the_http_functions() {
    let functions = function_operations();
    let spec = load_spec();
    assert!(
        !spec.operations.is_empty(),
        "openapi.yaml: no operations found under 'paths:'"
    );

    let without_id: Vec<String> = spec
        .operations
        .iter()
        .filter(|o| o.operation_id.is_none())
        .map(|o| format!("    {} {}", o.method, o.path))
        .collect();
    assert!(
        without_id.is_empty(),
        "openapi.yaml: operations without an operationId:\n{}",
        without_id.join("\n")
    );

    let duplicates = duplicate_path_keys(&spec_text());
    assert!(
        duplicates.is_empty(),
        "openapi.yaml: paths declared twice: {duplicates:?}"
    );

    let documented: BTreeSet<Operation> = spec
        .operations
        .iter()
        .map(|o| {
            (
                o.path.clone(),
                o.method.clone(),
                o.operation_id.clone().expect("checked above"),
            )
        })
        .collect();
    let missing: Vec<&Operation> = functions.difference(&documented).collect();
    let extra: Vec<&Operation> = documented.difference(&functions).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi.yaml and functions/*/function.json disagree.\n\
         In function.json but missing from openapi.yaml:\n{}\
         In openapi.yaml but not served by any function (or under another path/method/id):\n{}",
        listing(missing),
        listing(extra)
    );
}

#[test]
fn every_operation_but_health_requires_the_bearer_token() {
    let spec = load_spec();
    assert!(
        !spec.bearer_schemes.is_empty(),
        "openapi.yaml: components.securitySchemes has no scheme with 'type: http' and 'scheme: bearer'"
    );
    let functions = function_operations();
    let admin_ids: BTreeSet<String> = functions
        .iter()
        .filter(|(path, _, _)| path.starts_with("/api/admin/"))
        .map(|(_, _, id)| id.clone())
        .collect();

    let mut problems = Vec::new();
    for o in &spec.operations {
        let id = o.operation_id.clone().unwrap_or_default();
        let what = format!("{} {} ({id})", o.method, o.path);
        let effective = o.security.as_ref().or(spec.global_security.as_ref());
        let function = id.split('.').next().unwrap_or("");
        if ANONYMOUS_FUNCTIONS.contains(&function) {
            if o.security.as_deref() != Some(&[]) {
                problems.push(format!(
                    "    {what}: must declare 'security: []' (no token needed)"
                ));
            }
            continue;
        }
        let Some(reqs) = effective.filter(|r| !r.is_empty()) else {
            problems.push(format!(
                "    {what}: no bearer requirement (neither its own 'security' nor a global one applies)"
            ));
            continue;
        };
        let not_bearer: Vec<&str> = reqs
            .iter()
            .filter(|r| !spec.bearer_schemes.contains(&r.scheme))
            .map(|r| r.scheme.as_str())
            .collect();
        if !not_bearer.is_empty() {
            problems.push(format!(
                "    {what}: security alternatives {not_bearer:?} are not a bearer scheme (so the token would be optional)"
            ));
        }
        if admin_ids.contains(&id) && !reqs.iter().all(|r| r.roles.iter().any(|x| x == "admin")) {
            problems.push(format!(
                "    {what}: an admin route must require the 'admin' role, e.g. '- bearerAuth: [admin]'"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "openapi.yaml: security requirements are wrong:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_spec_reader_sees_operations_security_and_duplicates() {
    let text = "\
openapi: 3.1.0
info:
  description: |
    paths:
      /not/a/path:
        get:
security:
  - bearerAuth: []
paths:
  /api/a/{id}:
    parameters: []
    get:
      operationId: A
      description: |
        post:
      security: []
    post:
      operationId: 'A.post'
      security:
        - bearerAuth: [admin, 'ops']
  /api/b:
    delete:
      summary: no id
components:
  securitySchemes:
    bearerAuth:
      type: http
      scheme: bearer
    apiKey:
      type: apiKey
";
    let spec = parse_spec(text);
    let ops: Vec<(&str, &str, Option<&str>)> = spec
        .operations
        .iter()
        .map(|o| {
            (
                o.path.as_str(),
                o.method.as_str(),
                o.operation_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("/api/a/{id}", "get", Some("A")),
            ("/api/a/{id}", "post", Some("A.post")),
            ("/api/b", "delete", None),
        ]
    );
    assert_eq!(spec.operations[0].security, Some(vec![]));
    assert_eq!(
        spec.operations[1].security,
        Some(vec![Requirement {
            scheme: "bearerAuth".into(),
            roles: vec!["admin".into(), "ops".into()],
        }])
    );
    assert_eq!(spec.operations[2].security, None);
    assert_eq!(
        spec.global_security,
        Some(vec![Requirement {
            scheme: "bearerAuth".into(),
            roles: vec![],
        }])
    );
    assert_eq!(
        spec.bearer_schemes,
        BTreeSet::from(["bearerAuth".to_owned()])
    );
    assert_eq!(
        url_path("", "api/x/{date:datetime}/{n?}"),
        "/api/x/{date}/{n}"
    );
    assert_eq!(url_path("api", "/x"), "/api/x");
    assert_eq!(url_path("", "{ignored:maxlength(0)?}"), "/");
    assert_eq!(
        duplicate_path_keys("paths:\n  /a:\n    get: {}\n  /b:\n  /a:\n"),
        ["/a"]
    );
    assert_eq!(url_path("", "play/{*path}"), "/play/{path}");
}

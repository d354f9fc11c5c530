//! Contract between `openapi.yaml` and the function app: every HTTP function
//! (`functions/*/function.json` with an `httpTrigger`) is documented once per method, under its
//! URL path, with its function name as `operationId` (`Name.method` for a function serving
//! several methods), and nothing else is; and every operation but `Health` requires the bearer
//! token (admin routes with the `admin` role).
//!
//! No YAML library is used: `openapi.yaml` keeps a strict layout that is read line by line:
//! path keys indented 2 spaces under `paths:`, operations (method keys) 4 spaces, operation
//! fields 6 spaces, and security requirements as `security: []` or a block list of
//! `- scheme: [roles]` items. Block scalars (`|`, `>`) are skipped whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

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
    line: usize,
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

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Splits `key: value` (value may be empty); `None` for lines that are not a mapping key.
fn key_value(content: &str) -> Option<(&str, &str)> {
    if content.starts_with('-') {
        return None;
    }
    let (key, value) = if let Some(key) = content.strip_suffix(':') {
        (key, "")
    } else {
        let i = content.find(": ")?;
        (&content[..i], content[i + 2..].trim())
    };
    let key = key.trim().trim_matches(|c| c == '\'' || c == '"');
    Some((key, strip_comment(value)))
}

fn strip_comment(value: &str) -> &str {
    match value.find(" #") {
        Some(i) if !value.starts_with(['\'', '"']) => value[..i].trim_end(),
        _ => value,
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '\'' || c == '"')
}

fn is_block_scalar_start(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && (v.starts_with('|') || v.starts_with('>')) && v.len() <= 3
}

/// Parses `- scheme: [a, b]` / `- scheme: []` / `- scheme:` (roles then as `- role` lines
/// handled by the caller) into a requirement.
fn requirement_of(item: &str, line_no: usize) -> Requirement {
    let item = item.trim();
    if item == "{}" {
        return Requirement {
            scheme: "{}".into(),
            roles: Vec::new(),
        };
    }
    let (scheme, roles) = item.split_once(':').unwrap_or_else(|| {
        panic!("openapi.yaml:{line_no}: security item '{item}' is not 'scheme: [roles]'")
    });
    let roles = roles.trim();
    let roles = if roles.is_empty() {
        Vec::new()
    } else {
        let inner = roles
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or_else(|| {
                panic!("openapi.yaml:{line_no}: roles '{roles}' must be a flow list like [admin]")
            });
        inner
            .split(',')
            .map(unquote)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Requirement {
        scheme: unquote(scheme).to_owned(),
        roles,
    }
}

/// Where a `security:` key with a block value is being collected.
struct SecurityBlock {
    /// Indentation of the `security:` key; its items are indented 2 more.
    key_indent: usize,
    /// `None` for the global requirement, else the index of the operation.
    owner: Option<usize>,
    items: Vec<Requirement>,
}

fn parse_spec(text: &str) -> Spec {
    let mut spec = Spec::default();
    let mut top = String::new();
    let mut components_section = String::new();
    let mut scheme: Option<(String, Option<String>, Option<String>)> = None;
    let mut schemes = Vec::new();
    let mut current_path: Option<String> = None;
    let mut current_op: Option<usize> = None;
    let mut block_scalar_indent: Option<usize> = None;
    let mut security: Option<SecurityBlock> = None;

    let finish_security = |spec: &mut Spec, block: SecurityBlock| match block.owner {
        None => spec.global_security = Some(block.items),
        Some(i) => spec.operations[i].security = Some(block.items),
    };

    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        let content = line.trim_start();
        let indent = indent_of(line);
        if let Some(bi) = block_scalar_indent {
            if content.is_empty() || indent > bi {
                continue;
            }
            block_scalar_indent = None;
        }
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        assert!(
            !line.starts_with('\t'),
            "openapi.yaml:{line_no}: indent with spaces, not tabs"
        );

        if let Some(block) = &mut security {
            if indent == block.key_indent + 2 && content.starts_with("- ") {
                let item = requirement_of(&content[2..], line_no);
                block.items.push(item);
                continue;
            }
            if indent > block.key_indent + 2 {
                panic!(
                    "openapi.yaml:{line_no}: write each security requirement on one line, \
                     like '- bearerAuth: [admin]'"
                );
            }
            let block = security.take().expect("block");
            finish_security(&mut spec, block);
        }

        let kv = key_value(content);
        if let Some((_, value)) = kv
            && is_block_scalar_start(value)
        {
            block_scalar_indent = Some(indent);
        }

        if indent == 0 {
            if let Some((k, _)) = kv {
                top = k.to_owned();
            }
            current_path = None;
            current_op = None;
            if let Some(("security", value)) = kv {
                match value {
                    "" => {
                        security = Some(SecurityBlock {
                            key_indent: 0,
                            owner: None,
                            items: Vec::new(),
                        })
                    }
                    "[]" => spec.global_security = Some(Vec::new()),
                    other => panic!(
                        "openapi.yaml:{line_no}: write the global security as a block list, not '{other}'"
                    ),
                }
            }
            continue;
        }

        match top.as_str() {
            "paths" => {
                let Some((key, value)) = kv else { continue };
                match indent {
                    2 => {
                        assert!(
                            key.starts_with('/') && value.is_empty(),
                            "openapi.yaml:{line_no}: under 'paths:' an indent of 2 must be a path key like '  /api/x:', found '{content}'"
                        );
                        current_path = Some(key.to_owned());
                        current_op = None;
                    }
                    4 => {
                        let path = current_path.clone().unwrap_or_else(|| {
                            panic!("openapi.yaml:{line_no}: operation outside a path")
                        });
                        current_op = None;
                        if HTTP_METHODS.contains(&key) {
                            spec.operations.push(SpecOperation {
                                path,
                                method: key.to_owned(),
                                line: line_no,
                                ..SpecOperation::default()
                            });
                            current_op = Some(spec.operations.len() - 1);
                        }
                    }
                    6 => {
                        let Some(op) = current_op else { continue };
                        match key {
                            "operationId" => {
                                spec.operations[op].operation_id = Some(unquote(value).to_owned())
                            }
                            "security" => match value {
                                "" => {
                                    security = Some(SecurityBlock {
                                        key_indent: 6,
                                        owner: Some(op),
                                        items: Vec::new(),
                                    })
                                }
                                "[]" => spec.operations[op].security = Some(Vec::new()),
                                other => panic!(
                                    "openapi.yaml:{line_no}: write 'security: []' or a block list, not '{other}'"
                                ),
                            },
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            "components" => {
                let Some((key, value)) = kv else { continue };
                match indent {
                    2 => {
                        components_section = key.to_owned();
                        if let Some(s) = scheme.take() {
                            schemes.push(s);
                        }
                    }
                    4 if components_section == "securitySchemes" => {
                        if let Some(s) = scheme.take() {
                            schemes.push(s);
                        }
                        scheme = Some((key.to_owned(), None, None));
                    }
                    6 if components_section == "securitySchemes" => {
                        if let Some(s) = scheme.as_mut() {
                            match key {
                                "type" => s.1 = Some(unquote(value).to_ascii_lowercase()),
                                "scheme" => s.2 = Some(unquote(value).to_ascii_lowercase()),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some(block) = security.take() {
        finish_security(&mut spec, block);
    }
    if let Some(s) = scheme.take() {
        schemes.push(s);
    }
    spec.bearer_schemes = schemes
        .into_iter()
        .filter(|(_, t, s)| t.as_deref() == Some("http") && s.as_deref() == Some("bearer"))
        .map(|(name, _, _)| name)
        .collect();
    spec
}

fn load_spec() -> Spec {
    let path = repo_root().join("openapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_spec(&text)
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
        "openapi.yaml: no operations found under 'paths:' (path keys must be indented 2 spaces, methods 4)"
    );

    let without_id: Vec<String> = spec
        .operations
        .iter()
        .filter(|o| o.operation_id.is_none())
        .map(|o| format!("    line {}: {} {}", o.line, o.method, o.path))
        .collect();
    assert!(
        without_id.is_empty(),
        "openapi.yaml: operations without an operationId (indented 6 spaces):\n{}",
        without_id.join("\n")
    );

    let mut seen = BTreeMap::new();
    let mut duplicates = Vec::new();
    for o in &spec.operations {
        if let Some(first) = seen.insert((o.path.clone(), o.method.clone()), o.line) {
            duplicates.push(format!(
                "    {} {} (lines {first} and {})",
                o.method, o.path, o.line
            ));
        }
    }
    assert!(
        duplicates.is_empty(),
        "openapi.yaml: operations declared twice:\n{}",
        duplicates.join("\n")
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
        let what = format!("{} {} ({id}, line {})", o.method, o.path, o.line);
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
fn the_line_parser_reads_the_strict_layout() {
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
    assert_eq!(url_path("", "play/{*path}"), "/play/{path}");
}

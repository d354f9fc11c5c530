//! Static files served from memory: each with its content type, a strong ETag (a SHA-256 of
//! its bytes) and a cache policy. HTML revalidates on every load (`no-cache` + ETag, so a
//! deploy is seen at once); the other files are referenced from the HTML with their hash in
//! the URL (`app.css?v=<hash>`), and a request carrying the current hash may be cached for a
//! year. A request without it (a module `import`) revalidates by ETag. `If-None-Match` gets a
//! 304.

use super::ApiResponse;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use std::collections::HashMap;

/// One file, ready to serve.
#[derive(Debug, Clone)]
struct Asset {
    body: Bytes,
    content_type: &'static str,
    /// The quoted strong ETag, e.g. `"3f2a…"`.
    etag: String,
    /// The first 16 hex digits of the hash, used as `?v=` in URLs.
    version: String,
    html: bool,
}

/// A set of files served under one folder.
#[derive(Debug, Clone, Default)]
pub struct StaticSite {
    files: HashMap<String, Asset>,
    index: Option<String>,
}

/// The `Cache-Control` of a file whose URL names its content hash.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The content type of a file name, from its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()) {
        Some(e) if e == "html" || e == "htm" => "text/html; charset=utf-8",
        Some(e) if e == "js" || e == "mjs" => "text/javascript; charset=utf-8",
        Some(e) if e == "css" => "text/css; charset=utf-8",
        Some(e) if e == "svg" => "image/svg+xml",
        Some(e) if e == "json" => "application/json",
        Some(e) if e == "png" => "image/png",
        Some(e) if e == "ico" => "image/x-icon",
        Some(e) if e == "txt" => "text/plain; charset=utf-8",
        Some(e) if e == "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn asset(name: &str, body: Vec<u8>) -> Asset {
    let hash = hex_sha256(&body);
    let content_type = content_type(name);
    Asset {
        body: Bytes::from(body),
        content_type,
        etag: format!("\"{hash}\""),
        version: hash[..16].to_owned(),
        html: content_type.starts_with("text/html"),
    }
}

impl StaticSite {
    /// Builds the site from `(name, bytes)` pairs; `index` is the file served for the folder
    /// itself. In HTML files, every quoted reference to another file (`"app.css"`) becomes
    /// `"app.css?v=<hash>"`, so those URLs change whenever the file does.
    pub fn new(files: &[(&str, &[u8])], index: &str) -> Self {
        let mut out: HashMap<String, Asset> = files
            .iter()
            .filter(|(name, _)| content_type(name) != "text/html; charset=utf-8")
            .map(|(name, body)| (name.to_string(), asset(name, body.to_vec())))
            .collect();
        let mut names: Vec<&String> = out.keys().collect();
        // Longest first, so `app.js` never rewrites inside `myapp.js`.
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let versions: Vec<(String, String)> = names
            .iter()
            .map(|n| ((*n).clone(), out[*n].version.clone()))
            .collect();
        for (name, body) in files {
            if content_type(name) != "text/html; charset=utf-8" {
                continue;
            }
            let mut text = String::from_utf8_lossy(body).into_owned();
            for (other, version) in &versions {
                text = text.replace(&format!("\"{other}\""), &format!("\"{other}?v={version}\""));
            }
            out.insert(name.to_string(), asset(name, text.into_bytes()));
        }
        Self {
            index: out.contains_key(index).then(|| index.to_owned()),
            files: out,
        }
    }

    /// The names of all files.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The bytes of a file as served (HTML with its references rewritten).
    pub fn body(&self, name: &str) -> Option<&Bytes> {
        self.files.get(name).map(|a| &a.body)
    }

    /// Answers a GET for `name` (empty for the folder's index), or `None` when no such file.
    /// `query` is the raw query string; `headers` the request's; `extra` headers (security
    /// policy) are added to every answer, 304s included.
    pub fn serve(
        &self,
        name: &str,
        query: &str,
        headers: &HeaderMap,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Option<ApiResponse> {
        let name = if name.is_empty() {
            self.index.as_deref()?
        } else {
            name
        };
        let asset = self.files.get(name)?;
        let cache = if asset.html {
            "no-cache"
        } else if query
            .split('&')
            .any(|p| p.strip_prefix("v=") == Some(asset.version.as_str()))
        {
            IMMUTABLE
        } else {
            "no-cache"
        };
        let not_modified = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == asset.etag);
        let mut res = if not_modified {
            let mut res = http::Response::new(Bytes::new());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            res
        } else {
            let mut res = http::Response::new(asset.body.clone());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            );
            res
        };
        let h = res.headers_mut();
        h.insert(
            header::ETAG,
            HeaderValue::from_str(&asset.etag).expect("hex etag"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        for (k, v) in extra {
            h.insert(k.clone(), v.clone());
        }
        Some(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> StaticSite {
        StaticSite::new(
            &[
                (
                    "index.html",
                    b"<link href=\"app.css\"><script src=\"app.js\"></script>",
                ),
                ("app.css", b"body{}"),
                ("app.js", b"import './x.js';"),
            ],
            "index.html",
        )
    }

    #[test]
    fn html_names_hashed_urls_and_revalidates() {
        let s = site();
        let html = String::from_utf8(s.body("index.html").unwrap().to_vec()).unwrap();
        let v = &hex_sha256(b"body{}")[..16];
        assert!(html.contains(&format!("\"app.css?v={v}\"")), "{html}");
        let res = s.serve("", "", &HeaderMap::new(), &[]).unwrap();
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let etag = res.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let res = s.serve("index.html", "", &h, &[]).unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert!(res.body().is_empty());
    }

    #[test]
    fn assets_are_immutable_only_under_their_hash() {
        let s = site();
        let v = &hex_sha256(b"import './x.js';")[..16];
        let res = s
            .serve("app.js", &format!("v={v}"), &HeaderMap::new(), &[])
            .unwrap();
        assert_eq!(res.headers()[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let res = s.serve("app.js", "v=old", &HeaderMap::new(), &[]).unwrap();
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(s.serve("nope.js", "", &HeaderMap::new(), &[]).is_none());
    }
}

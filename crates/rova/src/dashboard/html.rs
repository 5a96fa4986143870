//! The dashboard's markup helpers: HTML escaping, the page layout (header,
//! navigation, the log-out form), error pages, and the small pieces pages
//! share (CSRF fields, one-button forms, usage bars, tables, ages).

use super::session::Session;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// `s` escaped for HTML text and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as display text: strings as they are, null as "", others
/// as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// [`text`], escaped.
pub fn t(v: &Value) -> String {
    esc(&text(v))
}

/// The navigation: project pages for everyone, admin pages for admins.
fn nav(s: &Session) -> String {
    let mut links = vec![
        ("/dashboard/servers", "Servers"),
        ("/dashboard/servers/new", "Launch"),
        ("/dashboard/keypairs", "Key pairs"),
        ("/dashboard/images", "Images"),
        ("/dashboard/networks", "Networks"),
        ("/dashboard/floating-ips", "Floating IPs"),
        ("/dashboard/security-groups", "Security groups"),
        ("/dashboard/quotas", "Quotas"),
        ("/dashboard/api-access", "API access"),
    ];
    if s.is_admin {
        links.extend([
            ("/dashboard/admin/servers", "All servers"),
            ("/dashboard/admin/hypervisors", "Hypervisors"),
            ("/dashboard/admin/services", "Services"),
            ("/dashboard/admin/migrations", "Migrations"),
            ("/dashboard/admin/flavors", "Flavors"),
        ]);
    }
    let items: String = links
        .iter()
        .map(|(href, label)| {
            let class = if href.contains("/admin/") {
                r#" class="admin""#
            } else {
                ""
            };
            format!(r#"<li><a href="{href}"{class}>{label}</a></li>"#)
        })
        .collect();
    format!(
        r#"<nav aria-label="Main"><ul>{items}</ul></nav>
<div class="who"><a href="/dashboard/project" title="Switch project">{user} · project {project}</a>
<form method="post" action="/dashboard/logout" class="inline">{csrf}<button type="submit" id="logout">Log out</button></form></div>"#,
        user = esc(&s.user_name),
        project = esc(&s.project_name),
        csrf = csrf_field(s),
    )
}

/// Every page loads only from Rova itself (no external requests; the
/// noVNC frame is served by Rova's console proxy).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'self'; form-action 'self'";

/// A whole page.
pub fn page(s: Option<&Session>, title: &str, body: &str) -> Response {
    let header_nav = s.map(nav).unwrap_or_default();
    let html = format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Rova</title>
<link rel="stylesheet" href="/dashboard/static/style.css">
<script src="/dashboard/static/live.js" defer></script>
</head><body>
<a class="skip" href="#main">Skip to content</a>
<header><a class="brand" href="/dashboard/servers">Rova</a>{header_nav}</header>
<main id="main">{body}</main>
</body></html>"##,
        title = esc(title),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        html,
    )
        .into_response()
}

/// A page with a status: the 403 and 404 pages and other refusals.
pub fn error_page(s: Option<&Session>, status: StatusCode, message: &str) -> Response {
    let title = match status.as_u16() {
        403 => "Forbidden",
        404 => "Not found",
        _ => "Error",
    };
    let body = format!(
        r#"<h1>{title}</h1><p class="alert" role="alert" data-status="{code}">{msg}</p>
<p><a href="/dashboard/servers">Back to the servers</a></p>"#,
        code = status.as_u16(),
        msg = esc(message),
    );
    let mut resp = page(s, title, &body);
    *resp.status_mut() = status;
    resp
}

/// The 403 page every admin page shows a member.
pub fn admin_only(s: &Session) -> Response {
    error_page(
        Some(s),
        StatusCode::FORBIDDEN,
        "This page is for administrators only.",
    )
}

/// A fragment (no layout).
pub fn fragment(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// A live part's fragment, with an `ETag` of its bytes: a refetch whose
/// `If-None-Match` names the same bytes gets an empty 304, so an unchanged
/// list of a thousand servers is not sent again every two seconds.
pub fn live_fragment(request: &axum::http::HeaderMap, body: String) -> Response {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body.as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    let cached = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
        (header::CACHE_CONTROL, "no-cache, private".to_string()),
        (header::ETAG, etag),
    ];
    if cached {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, body).into_response()
    }
}

/// A short message as a fragment with a status (for scripts).
pub fn fragment_status(status: StatusCode, message: &str) -> Response {
    let mut resp = fragment(if status.is_success() {
        note(message)
    } else {
        alert(message)
    });
    *resp.status_mut() = status;
    resp
}

/// The hidden CSRF field of a form.
pub fn csrf_field(s: &Session) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&s.csrf)
    )
}

/// A form with one button posting `fields` to `action`; a disabled button
/// says why in its title.
pub fn button_form(
    s: &Session,
    action: &str,
    label: &str,
    fields: &[(&str, &str)],
    refused: Option<&str>,
) -> String {
    let hidden: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                esc(k),
                esc(v)
            )
        })
        .collect();
    let state = match refused {
        Some(why) => format!(r#" disabled title="{}""#, esc(why)),
        None => String::new(),
    };
    format!(
        r#"<form method="post" action="{action}" class="inline">{csrf}{hidden}<button type="submit"{state}>{label}</button></form>"#,
        action = esc(action),
        csrf = csrf_field(s),
        label = esc(label),
    )
}

/// A labelled usage bar: `used` of `total` (a total ≤ 0 is unlimited).
pub fn bar(label: &str, used: f64, total: f64, unit: &str) -> String {
    if total <= 0.0 {
        return format!(
            r#"<div class="bar"><span>{l}: {used} {unit} used (no limit)</span></div>"#,
            l = esc(label),
        );
    }
    let pct = (used / total * 100.0).clamp(0.0, 100.0);
    format!(
        r#"<div class="bar"><span>{l}: {used} of {total} {unit}</span><meter min="0" max="{total}" value="{used}" high="{high}" aria-label="{l}">{pct:.0}%</meter></div>"#,
        l = esc(label),
        high = total * 0.85,
    )
}

/// A table with a header row; `rows` are ready `<tr>`s.
pub fn table(caption: &str, heads: &[&str], rows: &str, tbody_attrs: &str) -> String {
    let th: String = heads
        .iter()
        .map(|h| format!(r#"<th scope="col">{}</th>"#, esc(h)))
        .collect();
    format!(
        r#"<div class="scroll"><table><caption>{c}</caption><thead><tr>{th}</tr></thead><tbody{tbody_attrs}>{rows}</tbody></table></div>"#,
        c = esc(caption),
    )
}

/// One `<tr>` of already escaped cells.
pub fn row(cells: &[String]) -> String {
    let td: String = cells.iter().map(|c| format!("<td>{c}</td>")).collect();
    format!("<tr>{td}</tr>")
}

/// How long ago an RFC 3339 time was ("< 1 min", "3 min", "2 h", "5 d").
pub fn age(when: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(when) else {
        return String::new();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        // coarse on purpose: the live list's bytes (and ETag) stay the
        // same while nothing else changes
        s if s < 60 => "< 1 min".to_string(),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A message box (an API's refusal shown on a form).
pub fn alert(message: &str) -> String {
    format!(r#"<p class="alert" role="alert">{}</p>"#, esc(message))
}

/// A success note.
pub fn note(message: &str) -> String {
    format!(r#"<p class="note" role="status">{}</p>"#, esc(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn bars_clamp_and_handle_no_limit() {
        assert!(bar("Cores", 3.0, 0.0, "").contains("no limit"));
        assert!(bar("Cores", 30.0, 10.0, "").contains("100%"));
    }

    #[test]
    fn ages_read_rfc3339() {
        assert_eq!(age("not a time"), "");
        let old = (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339();
        assert_eq!(age(&old), "3 h");
    }
}

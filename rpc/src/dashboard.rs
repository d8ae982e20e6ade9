//! The built-in live dashboard: `GET /dashboard` on the RPC port.
//!
//! Three static files compiled into the binary (`rpc/assets/dashboard.{html,js,css}`, about
//! 20 kB in all): no CDN, no build step, works offline. The page reads the serving node's
//! own JSON-RPC (`POST /`, one batch a second: `getStatus`, `getBlockSummaries` of the new
//! blocks, `getPeers`, `getThroughput`, and every fifth second `getValidators` and
//! `getEvidence`) and its WebSocket (`/ws`, a `blocks` subscription that moves the head the
//! moment a block is finalized; reconnects back off from 1 s to 30 s, and the poll alone
//! keeps the page current without it) and draws the chain head, finality latency, finalized transactions per
//! second over the last five minutes (an SVG chart of the node's own per-second counts),
//! the mempool size, the validators with their share of the last 100 blocks' finalization
//! certificates and blocks proposed, the upcoming leaders, the peers with their admission
//! state and score, the sync state and the stored evidence. `GET /dashboard?compact` is a
//! narrow version for side-by-side views (`cairn-testnet dashboard`).
//!
//! | route | content type |
//! |---|---|
//! | `GET /dashboard` | `text/html; charset=utf-8` |
//! | `GET /dashboard/dashboard.js` | `text/javascript; charset=utf-8` |
//! | `GET /dashboard/dashboard.css` | `text/css; charset=utf-8` |
//!
//! Every answer carries [`CONTENT_SECURITY_POLICY`] (scripts, styles, images and
//! connections from the node itself only; no inline script, no `eval`, no plugins, no
//! forms), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-cache`. The page may be framed (the testnet page frames one per
//! node): it has no controls and changes nothing, so there is nothing to click-jack.
//! It is read-only: it calls only read methods, same-origin, so it needs no CORS setting.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page.
pub const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");
/// Its script.
pub const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
/// Its style sheet.
pub const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");

/// The `Content-Security-Policy` of every dashboard answer: nothing but the node's own
/// origin (`'self'`) for scripts, styles, images (plus `data:` for the empty favicon) and
/// `fetch`; everything else (objects, frames inside the page, fonts, media, workers, base
/// URI changes, form targets) is refused.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'";

/// The dashboard's routes (see the module docs), to merge into the RPC router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { asset(DASHBOARD_HTML, "text/html") }),
        )
        .route(
            "/dashboard/dashboard.js",
            get(|| async { asset(DASHBOARD_JS, "text/javascript") }),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| async { asset(DASHBOARD_CSS, "text/css") }),
        )
}

fn asset(body: &'static str, mime: &'static str) -> Response {
    let content_type = match mime {
        "text/html" => "text/html; charset=utf-8",
        "text/javascript" => "text/javascript; charset=utf-8",
        _ => "text/css; charset=utf-8",
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads only its own two assets, by the paths the router serves, and holds
    /// no inline script or style the policy would refuse.
    #[test]
    fn page_references_only_served_assets() {
        assert!(DASHBOARD_HTML.contains(r#"<script src="/dashboard/dashboard.js" defer>"#));
        assert!(DASHBOARD_HTML.contains(r#"href="/dashboard/dashboard.css""#));
        assert_eq!(DASHBOARD_HTML.matches("<script").count(), 1);
        assert!(
            !DASHBOARD_HTML.contains("style="),
            "inline styles are refused"
        );
        assert!(
            !DASHBOARD_HTML.contains("<style"),
            "inline styles are refused"
        );
        for text in [DASHBOARD_HTML, DASHBOARD_JS, DASHBOARD_CSS] {
            // The SVG namespace is a name, not a resource.
            let urls = text.matches("http://").count() + text.matches("https://").count();
            let namespaces = text.matches("http://www.w3.org/2000/svg").count();
            assert_eq!(urls, namespaces, "no external resources");
            assert!(!text.contains("//cdn"), "no external resources");
        }
        assert!(
            !DASHBOARD_JS.contains("innerHTML"),
            "node data is set as text only"
        );
        assert!(!DASHBOARD_JS.contains("eval("));
    }
}

//! Error bodies, from the token endpoint and the instance alike: read to a bound, then parsed
//! as Salesforce's REST error or kept as a short excerpt.

use reqwest::Response;
use serde::Deserialize;

/// Error bodies are read up to this size: enough for any Salesforce error, bounded against an
/// edge proxy's page.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

#[derive(Deserialize)]
struct RestErrorBody {
    #[serde(default, rename = "errorCode")]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

pub(super) async fn read_limited(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = ERROR_BODY_LIMIT.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    body
}

/// Salesforce REST errors are `[{"message": ..., "errorCode": ...}]`; edge proxies answer 5xx with
/// HTML, so anything else is kept as a short, single-line excerpt.
pub(super) fn parse_api_error_body(body: &[u8]) -> (Option<String>, String) {
    if let Ok(errors) = serde_json::from_slice::<Vec<RestErrorBody>>(body)
        && let Some(first) = errors.into_iter().next()
    {
        return (first.error_code, first.message.unwrap_or_default());
    }
    if let Ok(one) = serde_json::from_slice::<RestErrorBody>(body)
        && (one.error_code.is_some() || one.message.is_some())
    {
        return (one.error_code, one.message.unwrap_or_default());
    }
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if excerpt.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| excerpt.is_char_boundary(i))
            .unwrap_or(0);
        excerpt.truncate(cut);
        excerpt.push('…');
    }
    (None, excerpt)
}

//! One query page at a time, with `totalSize`, so the collector can tell a window too large for
//! one query before it writes a row.

use serde::Deserialize;

use crate::client::{InstanceRequest, JwtBearerClient};
use crate::error::Error;
use crate::objects::object::EventObject;
use crate::objects::record::ObjectRecord;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    #[serde(default)]
    pub(crate) total_size: u64,
    pub(crate) done: bool,
    #[serde(default)]
    pub(crate) next_records_url: Option<String>,
    #[serde(default)]
    pub(crate) records: Vec<ObjectRecord>,
    /// The response body's length, for the delivery figures.
    #[serde(skip)]
    pub(crate) bytes: u64,
}

/// The first page of `soql`. The context names the object and the whole query, so a shape the
/// platform refuses is reported with the clause it refused.
pub(crate) async fn first_page(
    client: &JwtBearerClient,
    object: &EventObject,
    soql: &str,
) -> Result<Page, Error> {
    let request = InstanceRequest::get(format!("{}/query", client.config().data_path()))
        .query("q", soql)
        .context(format!(
            "querying {object} ({}) with `{soql}`",
            object.kind().describe()
        ));
    fetch(client, object, &request).await
}

/// A following page (`nextRecordsUrl`). A 401 here re-authenticates and asks again inside
/// `send`; the locator does not depend on the session.
pub(crate) async fn next_page(
    client: &JwtBearerClient,
    object: &EventObject,
    url: &str,
    page: u32,
) -> Result<Page, Error> {
    let request = InstanceRequest::get(url).context(format!("reading page {page} of {object}"));
    fetch(client, object, &request).await
}

/// How an unreadable page's error begins ([`is_unreadable_page`] looks for it).
const UNREADABLE: &str = "a query page of ";

async fn fetch(
    client: &JwtBearerClient,
    object: &EventObject,
    request: &InstanceRequest,
) -> Result<Page, Error> {
    let response = client.send(request).await?;
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::transport("reading a query page", e))?;
    let mut page: Page = serde_json::from_slice(&body).map_err(|e| {
        Error::UnexpectedResponse(format!("{UNREADABLE}{object} could not be read: {e}"))
    })?;
    if !page.done && page.next_records_url.is_none() {
        return Err(Error::UnexpectedResponse(
            "a query page says done=false without a nextRecordsUrl".into(),
        ));
    }
    page.bytes = body.len() as u64;
    Ok(page)
}

/// Salesforce gave up on the query (`QUERY_TIMEOUT`, "Your query request was running for too
/// long"): a big-object window this busy has to be split.
pub(crate) fn is_query_timeout(error: &Error) -> bool {
    matches!(error, Error::Api(e) if e.error_code.as_deref() == Some("QUERY_TIMEOUT"))
}

/// A page whose body is not a query result (its JSON does not parse): a problem of that page,
/// which [`skip_unreadable_pages`](crate::collect::ObjectCollectorOptions::skip_unreadable_pages)
/// may skip, unlike the network, the API limit or authentication.
pub(crate) fn is_unreadable_page(error: &Error) -> bool {
    matches!(error, Error::UnexpectedResponse(m) if m.starts_with(UNREADABLE))
}

//! One query page of an object at a time, with `totalSize`, so the collector can tell a window
//! too large for one query before it writes a row. The page is read by the crate's one page
//! reader ([`read_page`](crate::query::read_page)).

use crate::client::{InstanceRequest, JwtBearerClient};
use crate::error::Error;
use crate::objects::object::EventObject;
use crate::objects::record::ObjectRecord;
use crate::query::{QueryPage, UNREADABLE_PAGE_OF, read_page};

/// A page of object rows.
pub(crate) type Page = QueryPage<ObjectRecord>;

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

async fn fetch(
    client: &JwtBearerClient,
    object: &EventObject,
    request: &InstanceRequest,
) -> Result<Page, Error> {
    read_page(client, request, Some(object.name())).await
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
    matches!(error, Error::UnexpectedResponse(m) if m.starts_with(UNREADABLE_PAGE_OF))
}

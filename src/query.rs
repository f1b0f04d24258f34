//! SOQL queries as lazy streams of typed records.

use std::collections::VecDeque;

use futures_util::Stream;
use futures_util::stream;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::{InstanceRequest, JwtBearerClient};
use crate::error::Error;

/// Options for [`JwtBearerClient::query`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Records a page, 200 to 2000, sent as `Sforce-Query-Options: batchSize=N`. Salesforce
    /// treats it as a hint. `None` lets Salesforce choose (up to 2000).
    pub batch_size: Option<u16>,
}

/// One page of a query response: the one page reader of every query the crate sends (this
/// module's streams, and the object sources' windows and keysets).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryPage<T> {
    #[serde(default)]
    pub(crate) total_size: u64,
    pub(crate) done: bool,
    #[serde(default)]
    pub(crate) next_records_url: Option<String>,
    #[serde(default = "Vec::new")]
    pub(crate) records: Vec<T>,
    /// The response body's length, for the delivery figures.
    #[serde(skip)]
    pub(crate) bytes: u64,
}

struct Paging<T> {
    client: JwtBearerClient,
    next: Option<InstanceRequest>,
    buffered: VecDeque<T>,
    batch_header: Option<HeaderValue>,
    page: u32,
}

impl JwtBearerClient {
    /// Runs a SOQL query and streams its records, deserialized into `T`.
    ///
    /// Pages are fetched lazily: the next one (`nextRecordsUrl`) is requested only when the
    /// consumer has taken every record of the current one, and dropping the stream sends
    /// nothing more. A `nextRecordsUrl` off the instance is refused. A 401 while paging
    /// re-authenticates and asks for the same page again. Build the SOQL with
    /// [`soql`](crate::soql) literals for any value from outside.
    pub fn query<T>(
        &self,
        soql: &str,
        options: QueryOptions,
    ) -> impl Stream<Item = Result<T, Error>> + Send + Unpin + 'static + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let first = InstanceRequest::get(format!("{}/query", self.config().data_path()))
            .query("q", soql)
            .context("running a SOQL query");
        // Outside 200..=2000 Salesforce answers 400; clamp rather than fail a whole run.
        let batch_header = options
            .batch_size
            .and_then(|n| HeaderValue::try_from(format!("batchSize={}", n.clamp(200, 2000))).ok());
        let state = Paging {
            client: self.clone(),
            next: Some(first),
            buffered: VecDeque::new(),
            batch_header,
            page: 0,
        };
        // Boxed so that the stream is `Unpin`: `while let Some(x) = s.next().await` works
        // without pinning it first.
        Box::pin(stream::try_unfold(state, |mut state| async move {
            loop {
                if let Some(record) = state.buffered.pop_front() {
                    return Ok(Some((record, state)));
                }
                let Some(mut request) = state.next.take() else {
                    return Ok(None);
                };
                if let Some(value) = &state.batch_header {
                    request = request.header(
                        HeaderName::from_static("sforce-query-options"),
                        value.clone(),
                    );
                }
                state.page += 1;
                let page: QueryPage<T> = read_page(&state.client, &request, None).await?;
                tracing::debug!(
                    page = state.page,
                    records = page.records.len(),
                    total = page.total_size,
                    "query page"
                );
                state.buffered = page.records.into();
                if let Some(next) = page.next_records_url.filter(|_| !page.done) {
                    // Not checked here: `send` refuses a URL off the instance before sending
                    // anything, and only when the consumer asks for the page.
                    state.next = Some(
                        InstanceRequest::get(next)
                            .context(format!("reading page {} of a SOQL query", state.page + 1)),
                    );
                }
            }
        }))
    }

    /// Runs `SELECT COUNT() ...` and returns `totalSize`.
    pub async fn count(&self, soql: &str) -> Result<u64, Error> {
        let request = InstanceRequest::get(format!("{}/query", self.config().data_path()))
            .query("q", soql)
            .context("running a SOQL COUNT() query");
        let page: QueryPage<serde::de::IgnoredAny> = read_page(self, &request, None).await?;
        Ok(page.total_size)
    }
}

/// How an unreadable page's error begins when the query is about one object.
pub(crate) const UNREADABLE_PAGE_OF: &str = "a query page of ";

/// Sends `request` and reads one page of its answer, checked: a body that is not a query page
/// is an [`Error::UnexpectedResponse`] naming `object` when given (`a query page of
/// LoginEvent could not be read: ...`), and a page that says `done=false` without a
/// `nextRecordsUrl` is refused, since following it is impossible and stopping would lose rows.
pub(crate) async fn read_page<T: DeserializeOwned>(
    client: &JwtBearerClient,
    request: &InstanceRequest,
    object: Option<&str>,
) -> Result<QueryPage<T>, Error> {
    let response = client.send(request).await?;
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::transport("reading a query page", e))?;
    let mut page: QueryPage<T> = serde_json::from_slice(&body).map_err(|e| {
        Error::UnexpectedResponse(match object {
            Some(object) => format!("{UNREADABLE_PAGE_OF}{object} could not be read: {e}"),
            None => format!("a query page could not be read: {e}"),
        })
    })?;
    if !page.done && page.next_records_url.is_none() {
        return Err(Error::UnexpectedResponse(
            "a query page says done=false without a nextRecordsUrl".into(),
        ));
    }
    page.bytes = body.len() as u64;
    Ok(page)
}

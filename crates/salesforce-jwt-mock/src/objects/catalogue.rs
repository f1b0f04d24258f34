//! The objects the org holds (real-time storage objects, threat-detection stores,
//! SetupAuditTrail, Event Log Objects): each one's kind and standard fields.
//!
//! A second reading of the Real-Time Event Monitoring storage table, independent of the
//! library's catalogue on purpose.

/// Big object (indexed on `EventDate`, `EventIdentifier`), ordinary object, or Event Log
/// Object (queried in `Timestamp` windows of at most 15 days; see `soql::objects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Big,
    Standard,
    EventLog,
}

/// One object: name, kind, the fields `FIELDS(STANDARD)` returns, the extra indexed fields
/// (ReportEvent's beta `UserId` index), and the relationships a query may walk.
#[derive(Debug)]
pub(crate) struct ObjectDef {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) fields: &'static [&'static str],
    pub(crate) extra_index: &'static [&'static str],
    pub(crate) relationships: &'static [(&'static str, &'static str)],
}

const BIG_COMMON: &[&str] = &[
    "Id",
    "CreatedDate",
    "CreatedById",
    "EventDate",
    "EventIdentifier",
    "UserId",
    "Username",
    "SourceIp",
    "SessionKey",
    "LoginKey",
    "SessionLevel",
    "RelatedEventIdentifier",
    "PolicyId",
    "PolicyOutcome",
    "EvaluationTime",
];

macro_rules! fields {
    ($($extra:literal),* $(,)?) => {
        &[
            "Id", "CreatedDate", "CreatedById", "EventDate", "EventIdentifier", "UserId",
            "Username", "SourceIp", "SessionKey", "LoginKey", "SessionLevel",
            "RelatedEventIdentifier", "PolicyId", "PolicyOutcome", "EvaluationTime",
            $($extra),*
        ]
    };
}

macro_rules! store_fields {
    ($($extra:literal),* $(,)?) => {
        &[
            "Id", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
            "SystemModstamp", "EventDate", "EventIdentifier", "UserId", "Username", "SourceIp",
            "SessionKey", "LoginKey", "Score", "Summary",
            $($extra),*
        ]
    };
}

const fn big(name: &'static str, fields: &'static [&'static str]) -> ObjectDef {
    ObjectDef {
        name,
        kind: Kind::Big,
        fields,
        extra_index: &[],
        relationships: &[],
    }
}

const fn store(name: &'static str, fields: &'static [&'static str]) -> ObjectDef {
    ObjectDef {
        name,
        kind: Kind::Standard,
        fields,
        extra_index: &[],
        relationships: &[("CreatedBy", "User")],
    }
}

const fn event_log(name: &'static str, fields: &'static [&'static str]) -> ObjectDef {
    ObjectDef {
        name,
        kind: Kind::EventLog,
        fields,
        extra_index: &[],
        relationships: &[],
    }
}

/// `LoginEventLog` in the v67 object reference, with the `Id` every sObject has (the
/// reference lists none). Copied from the reference, not taken from the library's catalogue,
/// on purpose: the mock is a second reading of the platform (see the crate docs), so a field
/// the library gets wrong is refused here instead of agreed with.
const LOGIN_EVENT_LOG: &[&str] = &[
    "Id",
    "ApiType",
    "ApiVersion",
    "AuthenticatedMethodReference",
    "BrowserType",
    "CipherSuite",
    "ClientIp",
    "CpuTime",
    "DatabaseTotalTime",
    "ForwardedForIp",
    "LoginKey",
    "LoginStatus",
    "LoginSubType",
    "LoginType",
    "RequestIdentifier",
    "RequestStatus",
    "RunTime",
    "SessionKey",
    "SourceIp",
    "Timestamp",
    "TransportLayerSecurityProtocol",
    "Uri",
    "UserIdentifier",
    "UserType",
    "Username",
];

/// `ApiTotalUsageEventLog` in the v67 object reference, with `Id`.
const API_TOTAL_USAGE_EVENT_LOG: &[&str] = &[
    "Id",
    "ApiFamily",
    "ApiResource",
    "BotIdentifier",
    "BotSessionIdentifier",
    "ClientIp",
    "ClientName",
    "ConnectedAppIdentifier",
    "HttpMethod",
    "IsApiLimitCounted",
    "ObjectName",
    "PlannerIdentifier",
    "RequestIdentifier",
    "StatusCode",
    "Timestamp",
    "UserIdentifier",
];

/// The fields the mock gives the Event Log Objects whose reference it does not copy.
const EVENT_LOG_COMMON: &[&str] = &[
    "Id",
    "Timestamp",
    "RequestIdentifier",
    "UserIdentifier",
    "ClientIp",
    "Uri",
    "RunTime",
    "CpuTime",
];

pub(crate) const OBJECTS: &[ObjectDef] = &[
    event_log("LoginEventLog", LOGIN_EVENT_LOG),
    event_log("ApiTotalUsageEventLog", API_TOTAL_USAGE_EVENT_LOG),
    event_log("RestApiEventLog", EVENT_LOG_COMMON),
    event_log("UriEventLog", EVENT_LOG_COMMON),
    event_log("ReportEventLog", EVENT_LOG_COMMON),
    event_log("AuraRequestEventLog", EVENT_LOG_COMMON),
    event_log("LoginAsEventLog", EVENT_LOG_COMMON),
    event_log("BulkApiEventLog", EVENT_LOG_COMMON),
    big(
        "LoginEvent",
        fields!(
            "ForwardedForIp",
            "LoginType",
            "LoginSubType",
            "Status",
            "Browser",
            "Platform",
            "Application",
            "LoginUrl",
            "CountryIso",
            "Country",
            "City",
            "LoginLatitude",
            "LoginLongitude",
            "LoginHistoryId",
            "AuthMethodReference",
            "TlsProtocol",
            "CipherSuite",
            "HttpMethod",
            "ApiType",
            "ApiVersion",
            "ClientVersion",
            "AdditionalInfo",
            "UserType",
        ),
    ),
    big("LogoutEvent", fields!()),
    big(
        "LoginAsEvent",
        fields!(
            "DelegatedUsername",
            "DelegatedOrganizationId",
            "TargetUrl",
            "Application",
            "Browser",
            "Platform",
            "LoginType"
        ),
    ),
    big(
        "ApiEvent",
        fields!(
            "ApiType",
            "ApiVersion",
            "Client",
            "ElapsedTime",
            "Operation",
            "Query",
            "QueriedEntities",
            "RowsProcessed",
            "Records"
        ),
    ),
    ObjectDef {
        name: "ReportEvent",
        kind: Kind::Big,
        fields: fields!(
            "ReportId",
            "Name",
            "Operation",
            "QueriedEntities",
            "RowsProcessed",
            "ColumnHeaders",
            "ExportFileFormat"
        ),
        extra_index: &["UserId"],
        relationships: &[],
    },
    big(
        "UriEvent",
        fields!("Operation", "QueriedEntities", "RecordId", "Message"),
    ),
    big(
        "LightningUriEvent",
        fields!(
            "Operation",
            "QueriedEntities",
            "RecordId",
            "AppName",
            "DeviceId",
            "Duration"
        ),
    ),
    big(
        "ListViewEvent",
        fields!(
            "ListViewId",
            "Name",
            "OwnerId",
            "QueriedEntities",
            "RowsProcessed",
            "ColumnHeaders"
        ),
    ),
    big(
        "BulkApiResultEventStore",
        fields!("JobId", "BatchId", "Query", "QueryResultId"),
    ),
    big(
        "FileEventStore",
        fields!(
            "FileAction",
            "FileName",
            "FileSource",
            "FileType",
            "ContentSize",
            "VersionId",
            "DocumentId"
        ),
    ),
    big(
        "PermissionSetEventStore",
        fields!(
            "EventSource",
            "Operation",
            "ParentIdList",
            "PermissionExpirationList",
            "PermissionList",
            "PermissionType"
        ),
    ),
    big(
        "IdentityProviderEventStore",
        fields!(
            "AppId",
            "AuthSessionId",
            "ErrorCode",
            "InitiatedBy",
            "SamlEntityUrl",
            "SsoType"
        ),
    ),
    big(
        "IdentityVerificationEvent",
        fields!(
            "Activity",
            "Policy",
            "Remarks",
            "Status",
            "VerificationMethod"
        ),
    ),
    store(
        "ApiAnomalyEventStore",
        store_fields!(
            "ApiAnomalyEventNumber",
            "Operation",
            "QueriedEntities",
            "RowsProcessed",
            "UserAgent"
        ),
    ),
    store(
        "CredentialStuffingEventStore",
        store_fields!("CredentialStuffingEventNumber", "LoginUrl", "UserAgent"),
    ),
    store(
        "ReportAnomalyEventStore",
        store_fields!("ReportAnomalyEventNumber", "Report"),
    ),
    store(
        "SessionHijackingEventStore",
        store_fields!(
            "SessionHijackingEventNumber",
            "CurrentIp",
            "CurrentUserAgent",
            "PreviousIp",
            "PreviousUserAgent"
        ),
    ),
    ObjectDef {
        name: "SetupAuditTrail",
        kind: Kind::Standard,
        fields: &[
            "Id",
            "Action",
            "Section",
            "CreatedDate",
            "CreatedById",
            "Display",
            "DelegateUser",
            "ResponsibleNamespacePrefix",
            "CreatedByContext",
            "CreatedByIssuer",
        ],
        extra_index: &[],
        relationships: &[("CreatedBy", "User")],
    },
];

/// The object of that name, case-insensitively.
pub(crate) fn lookup(name: &str) -> Option<&'static ObjectDef> {
    OBJECTS.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// The fields every big object shares.
pub(crate) fn big_common() -> &'static [&'static str] {
    BIG_COMMON
}

/// Whether a field holds a datetime (for literal type checks and comparisons).
pub(crate) fn is_datetime(field: &str) -> bool {
    [
        "EventDate",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "Timestamp",
    ]
    .iter()
    .any(|f| f.eq_ignore_ascii_case(field))
}

/// Whether a field compares case-sensitively (Ids and identifiers).
pub(crate) fn is_id_like(field: &str) -> bool {
    field.eq_ignore_ascii_case("Id")
        || field.ends_with("Id")
        || field.eq_ignore_ascii_case("EventIdentifier")
}

impl ObjectDef {
    /// The field of this name, in its canonical case.
    pub(crate) fn field(&self, name: &str) -> Option<&'static str> {
        self.fields
            .iter()
            .copied()
            .find(|f| f.eq_ignore_ascii_case(name))
    }

    /// The relationship (`CreatedBy`) of this name and its target object.
    pub(crate) fn relationship(&self, name: &str) -> Option<(&'static str, &'static str)> {
        self.relationships
            .iter()
            .copied()
            .find(|(r, _)| r.eq_ignore_ascii_case(name))
    }
}

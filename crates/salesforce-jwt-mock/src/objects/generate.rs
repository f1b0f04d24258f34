//! Realistic, deterministic rows for the real-time objects, in the shapes Salesforce returns:
//! `EventIdentifier` UUIDs, `Id` `000000000000000AAA` on big objects, `+0000` datetimes with
//! milliseconds on `EventDate`, `CreatedDate` lagging `EventDate` by seconds (big objects) or by
//! a detection delay (threat-detection stores), second-precision `CreatedDate` on standard
//! objects.

use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime, UtcOffset};

use super::catalogue::{Kind, ObjectDef, big_common, lookup};

const USERS: &[(&str, &str)] = &[
    ("0055j00000AT6I1AAL", "salesforceinstance@devtest.in"),
    ("0055j000000utlQAAR", "user.name@email.com"),
    ("0055g00000UvWxYAAV", "ana.silva@example.com"),
    ("0055g00000KpQrSAAV", "integration@example.com"),
];
const IPS: &[&str] = &[
    "89.160.20.112",
    "81.2.69.142",
    "2a02:cf40::1",
    "175.16.199.4",
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `2024-07-08T07:26:18.239+0000`: Salesforce's REST datetime.
pub(crate) fn sf_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn random(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALNUM[rng.usize(0..ALNUM.len())]))
        .collect()
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    let hex = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[rng.usize(0..16)]))
            .collect()
    };
    let variant = char::from(b"89ab"[rng.usize(0..4)]);
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 3),
        hex(rng, 3),
        hex(rng, 12)
    )
}

fn pick<'a>(rng: &mut fastrand::Rng, options: &[&'a str]) -> &'a str {
    options[rng.usize(0..options.len())]
}

/// A random time in `(after, up_to]`, whole milliseconds.
fn time_in(
    rng: &mut fastrand::Rng,
    after: OffsetDateTime,
    up_to: OffsetDateTime,
) -> OffsetDateTime {
    let span = (up_to - after).whole_milliseconds().max(1) as u64;
    after + Duration::milliseconds(rng.u64(1..=span) as i64)
}

/// `count` rows of `object` with their times in `(after, up_to]` (`EventDate` for big objects,
/// `CreatedDate` for standard ones, `Timestamp` for Event Log Objects), the same for the same
/// seed. Standard-object and Event Log Object rows carry no `Id`:
/// [`MockOrg::add_records`](crate::MockOrg::add_records) assigns one, in insertion order, as
/// Salesforce does. An object the org does not know gets the fields every big object has.
pub fn generate_records(
    object: &str,
    after: OffsetDateTime,
    up_to: OffsetDateTime,
    count: usize,
    seed: u64,
) -> Vec<Map<String, Value>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let def = lookup(object);
    (0..count)
        .map(|i| match def {
            Some(def) if def.kind == Kind::Standard => standard_row(def, &mut rng, after, up_to, i),
            Some(def) if def.kind == Kind::EventLog => event_log_row(def, &mut rng, after, up_to),
            Some(def) => big_row(def.name, def.fields, &mut rng, after, up_to),
            None => big_row(object, big_common(), &mut rng, after, up_to),
        })
        .collect()
}

fn big_row(
    object: &str,
    fields: &[&str],
    rng: &mut fastrand::Rng,
    after: OffsetDateTime,
    up_to: OffsetDateTime,
) -> Map<String, Value> {
    let event_date = time_in(rng, after, up_to);
    // The stored row is written seconds after the event (about 4 s in a real LoginEvent).
    let created = event_date + Duration::milliseconds(rng.i64(500..6000));
    let (user_id, username) = USERS[rng.usize(0..USERS.len())];
    let mut row = Map::new();
    for field in fields {
        let value = match *field {
            "Id" => json!("000000000000000AAA"),
            "EventDate" => json!(sf_datetime(event_date)),
            "CreatedDate" => json!(sf_datetime(created)),
            "CreatedById" => json!("0055j000000q9s7AAA"),
            "EventIdentifier" => json!(uuid(rng)),
            "UserId" => json!(user_id),
            "Username" => json!(username),
            "SourceIp" => json!(pick(rng, IPS)),
            "SessionKey" if object == "LoginEvent" => Value::Null,
            "SessionKey" | "LoginKey" => json!(random(rng, 16)),
            "SessionLevel" => json!(pick(rng, &["STANDARD", "STANDARD", "HIGH_ASSURANCE"])),
            "EvaluationTime" => json!(0),
            "LoginType" => json!(pick(
                rng,
                &[
                    "Remote Access 2.0",
                    "Application",
                    "SAML Sfdc Initiated SSO"
                ]
            )),
            "Status" => json!(pick(
                rng,
                &[
                    "Success",
                    "Success",
                    "Failed: Missing Consumer Key Parameter",
                    "Invalid Password"
                ]
            )),
            "Browser" => json!(pick(rng, &["Chrome 126", "Firefox 127", "Unknown"])),
            "Platform" => json!(pick(rng, &["Mac OSX", "Windows 10", "Unknown"])),
            "Application" => json!(pick(
                rng,
                &["Browser", "testing_salesforce", "Salesforce CLI"]
            )),
            "LoginUrl" => json!("devtestin-dev-ed.develop.my.salesforce.com"),
            "CountryIso" => json!(pick(rng, &["SE", "GB", "US"])),
            "LoginLatitude" => json!(59.3294),
            "LoginLongitude" => json!(18.0687),
            "LoginHistoryId" => json!(format!("0YaJ4{}", random(rng, 13))),
            "TlsProtocol" => json!(pick(rng, &["TLS 1.2", "TLS 1.3"])),
            "CipherSuite" => json!(pick(
                rng,
                &["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"]
            )),
            "HttpMethod" => json!(pick(rng, &["GET", "POST"])),
            // A string on LoginEvent ("N/A"), a number on ApiEvent.
            "ApiVersion" if object == "LoginEvent" => json!("N/A"),
            "ApiVersion" => json!(64.0),
            "ApiType" if object == "LoginEvent" => json!("N/A"),
            "ApiType" => json!(pick(rng, &["REST", "SOAP Partner"])),
            "ClientVersion" => json!("N/A"),
            "AdditionalInfo" => json!("{}"),
            "UserType" => json!("Standard"),
            "Operation" => json!(pick(rng, &["Query", "Read", "Export"])),
            "QueriedEntities" => json!(pick(rng, &["Account", "Contact", "Opportunity"])),
            "RowsProcessed" | "Records" | "ContentSize" => json!(rng.u32(1..5000)),
            "ElapsedTime" | "Duration" => json!(rng.u32(5..900)),
            "Query" => json!("SELECT Id, Name FROM Account"),
            "FileAction" => json!(pick(rng, &["DOWNLOAD", "PREVIEW", "UPLOAD"])),
            "FileName" => json!(format!("report-{}.csv", rng.u16(1..999))),
            "PermissionType" => json!(pick(rng, &["ModifyAllData", "ViewAllData", "ManageUsers"])),
            "Activity" => json!("Login"),
            "VerificationMethod" => {
                json!(pick(rng, &["TOTP", "Email", "Salesforce Authenticator"]))
            }
            "Name" => json!("Quarterly pipeline"),
            _ => Value::Null,
        };
        row.insert((*field).to_string(), value);
    }
    row
}

fn standard_row(
    def: &ObjectDef,
    rng: &mut fastrand::Rng,
    after: OffsetDateTime,
    up_to: OffsetDateTime,
    index: usize,
) -> Map<String, Value> {
    // Standard objects store CreatedDate in whole seconds: many rows share one.
    let created = time_in(rng, after, up_to);
    let created = created.replace_millisecond(0).unwrap_or(created);
    let created = if created <= after {
        created + Duration::seconds(1)
    } else {
        created
    };
    // Threat detection runs its models after the event: EventDate precedes CreatedDate.
    let event_date = created - Duration::seconds(rng.i64(30..600));
    let (user_id, username) = USERS[rng.usize(0..USERS.len())];
    let mut row = Map::new();
    for field in def.fields {
        let value = match *field {
            "Id" => continue,
            "CreatedDate" | "LastModifiedDate" | "SystemModstamp" => json!(sf_datetime(created)),
            "CreatedById" | "LastModifiedById" => json!("0055j000000utlPAAQ"),
            "EventDate" => json!(sf_datetime(event_date)),
            "EventIdentifier" => json!(uuid(rng)),
            "UserId" => json!(user_id),
            "Username" => json!(username),
            "SourceIp" | "CurrentIp" | "PreviousIp" => json!(pick(rng, IPS)),
            "SessionKey" | "LoginKey" => json!(random(rng, 16)),
            "Score" => json!(f64::from(rng.u8(1..100)) / 100.0),
            "Summary" => json!("Unusual activity for this user"),
            f if f.ends_with("EventNumber") => json!(format!("{:08}", index + 1)),
            "Action" => json!(pick(
                rng,
                &[
                    "PermSetCreate",
                    "insertConnectedApplication",
                    "changedpassword",
                    "loginasgrantedtosfdc"
                ]
            )),
            "Section" => json!(pick(
                rng,
                &["Manage Users", "Connected Apps", "Security Controls"]
            )),
            "Display" => json!(format!(
                "For user {username}, the User Verified Email status changed to verified"
            )),
            "CreatedByContext" if rng.u8(0..4) == 0 => json!("Einstein"),
            _ => Value::Null,
        };
        row.insert((*field).to_string(), value);
    }
    if def.relationship("CreatedBy").is_some() {
        row.insert(
            "CreatedBy".to_string(),
            json!({"Username": username, "Name": username.split('@').next().unwrap_or(username)}),
        );
    }
    row
}

fn event_log_row(
    def: &ObjectDef,
    rng: &mut fastrand::Rng,
    after: OffsetDateTime,
    up_to: OffsetDateTime,
) -> Map<String, Value> {
    let timestamp = time_in(rng, after, up_to);
    let (user_id, username) = USERS[rng.usize(0..USERS.len())];
    let mut row = Map::new();
    for field in def.fields {
        let value = match *field {
            "Id" => continue,
            "Timestamp" => json!(sf_datetime(timestamp)),
            "UserIdentifier" => json!(user_id),
            "Username" => json!(username),
            "ClientIp" | "SourceIp" => json!(pick(rng, IPS)),
            "RequestIdentifier" => json!(format!("TID:{}", random(rng, 18))),
            "SessionKey" | "LoginKey" => json!(random(rng, 16)),
            "LoginStatus" => json!(pick(
                rng,
                &[
                    "LOGIN_NO_ERROR",
                    "LOGIN_NO_ERROR",
                    "LOGIN_ERROR_INVALID_PASSWORD"
                ]
            )),
            "LoginType" => json!(pick(rng, &["Application", "Remote Access 2.0"])),
            "RequestStatus" => json!(pick(rng, &["Success", "Failed"])),
            "BrowserType" => json!(pick(rng, &["Chrome", "Firefox"])),
            "ApiType" => json!(pick(rng, &["N/A", "REST"])),
            "ApiVersion" => json!(64),
            "TransportLayerSecurityProtocol" => json!("TLSv1.3"),
            "CipherSuite" => json!("TLS_AES_256_GCM_SHA384"),
            "Uri" => json!(pick(rng, &["/index.jsp", "/services/oauth2/token"])),
            "UserType" => json!("Standard"),
            "RunTime" | "CpuTime" | "DatabaseTotalTime" => json!(f64::from(rng.u16(1..900))),
            "ApiFamily" => json!(pick(rng, &["REST", "SOAP"])),
            "ApiResource" => json!(pick(rng, &["/query", "/sobjects/Account"])),
            "HttpMethod" => json!(pick(rng, &["GET", "POST"])),
            "IsApiLimitCounted" => json!(true),
            "StatusCode" => json!(
                pick(rng, &["200", "200", "401"])
                    .parse::<u16>()
                    .unwrap_or(200)
            ),
            "ObjectName" => json!(pick(rng, &["Account", "Contact"])),
            "ClientName" => json!("sf-ingest"),
            _ => Value::Null,
        };
        row.insert((*field).to_string(), value);
    }
    row
}

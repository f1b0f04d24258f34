//! The columns of each event type and the values of a generated row, edge cases included.

use std::fmt::Write as _;

use time::{OffsetDateTime, UtcOffset};

use super::with_checksum;

const PREFIX: &[&str] = &[
    "EVENT_TYPE",
    "TIMESTAMP",
    "REQUEST_ID",
    "ORGANIZATION_ID",
    "USER_ID",
    "RUN_TIME",
    "CPU_TIME",
    "URI",
    "SESSION_KEY",
    "LOGIN_KEY",
];
const SUFFIX: &[&str] = &[
    "TIMESTAMP_DERIVED",
    "USER_ID_DERIVED",
    "CLIENT_IP",
    "URI_ID_DERIVED",
];

pub(super) fn columns_for(event_type: &str) -> Vec<&'static str> {
    let middle: &[&str] = match event_type {
        // The Login header observed in late 2023, verbatim: it does not end with the common suffix.
        "Login" => {
            return vec![
                "EVENT_TYPE",
                "TIMESTAMP",
                "REQUEST_ID",
                "ORGANIZATION_ID",
                "USER_ID",
                "RUN_TIME",
                "CPU_TIME",
                "URI",
                "SESSION_KEY",
                "LOGIN_KEY",
                "USER_TYPE",
                "REQUEST_STATUS",
                "DB_TOTAL_TIME",
                "LOGIN_TYPE",
                "BROWSER_TYPE",
                "API_TYPE",
                "API_VERSION",
                "USER_NAME",
                "TLS_PROTOCOL",
                "CIPHER_SUITE",
                "AUTHENTICATION_METHOD_REFERENCE",
                "LOGIN_SUB_TYPE",
                "TIMESTAMP_DERIVED",
                "USER_ID_DERIVED",
                "CLIENT_IP",
                "URI_ID_DERIVED",
                "LOGIN_STATUS",
                "SOURCE_IP",
            ];
        }
        // Logout shares neither the common prefix nor the suffix.
        "Logout" => {
            return vec![
                "EVENT_TYPE",
                "TIMESTAMP",
                "REQUEST_ID",
                "ORGANIZATION_ID",
                "USER_ID",
                "USER_TYPE",
                "SESSION_TYPE",
                "SESSION_LEVEL",
                "BROWSER_TYPE",
                "PLATFORM_TYPE",
                "RESOLUTION_TYPE",
                "APP_TYPE",
                "CLIENT_VERSION",
                "API_TYPE",
                "API_VERSION",
                "USER_INITIATED_LOGOUT",
                "TIMESTAMP_DERIVED",
                "USER_ID_DERIVED",
                "CLIENT_IP",
                "SESSION_KEY",
                "LOGIN_KEY",
            ];
        }
        "ApexUnexpectedException" => {
            return vec![
                "EVENT_TYPE",
                "TIMESTAMP",
                "REQUEST_ID",
                "ORGANIZATION_ID",
                "USER_ID",
                "EXCEPTION_TYPE",
                "EXCEPTION_MESSAGE",
                "STACK_TRACE",
                "EXCEPTION_CATEGORY",
                "TIMESTAMP_DERIVED",
                "USER_ID_DERIVED",
            ];
        }
        "API" => &[
            "CLIENT_NAME",
            "API_TYPE",
            "API_VERSION",
            "METHOD_NAME",
            "ENTITY_NAME",
            "ROWS_PROCESSED",
            "REQUEST_SIZE",
            "RESPONSE_SIZE",
            "REQUEST_STATUS",
            "DB_TOTAL_TIME",
            "DB_BLOCKS",
            "DB_CPU_TIME",
            "USER_AGENT",
            "QUERY",
        ],
        "URI" => &[
            "USER_TYPE",
            "REQUEST_STATUS",
            "DB_TOTAL_TIME",
            "DB_BLOCKS",
            "DB_CPU_TIME",
            "REFERRER_URI",
        ],
        "ApexExecution" => &[
            "ENTRY_POINT",
            "QUIDDITY",
            "EXEC_TIME",
            "DB_TOTAL_TIME",
            "CALLOUT_TIME",
            "NUMBER_SOQL_QUERIES",
            "IS_LONG_RUNNING_REQUEST",
        ],
        "Report" => &[
            "ORIGIN",
            "DASHBOARD_ID",
            "DASHBOARD_COMPONENT_ID",
            "REPORT_ID",
            "ENTITY_NAME",
            "DISPLAY_TYPE",
            "RENDERING_TYPE",
            "REPORT_DESCRIPTION",
            "SORT",
            "ROW_COUNT",
            "NUMBER_EXCEPTION_FILTERS",
            "NUMBER_COLUMNS",
            "AVERAGE_ROW_SIZE",
            "DB_TOTAL_TIME",
            "DB_BLOCKS",
            "DB_CPU_TIME",
            "IS_SCHEDULED",
        ],
        _ => &[],
    };
    PREFIX.iter().chain(middle).chain(SUFFIX).copied().collect()
}

/// The `LogFileFieldTypes` name for a column: Salesforce's own choices where known, else `String`.
pub(crate) fn column_type(name: &str) -> &'static str {
    match name {
        "ORGANIZATION_ID"
        | "USER_ID"
        | "USER_ID_DERIVED"
        | "URI_ID_DERIVED"
        | "DASHBOARD_ID"
        | "DASHBOARD_COMPONENT_ID"
        | "REPORT_ID" => "Id",
        "RUN_TIME"
        | "CPU_TIME"
        | "DB_TOTAL_TIME"
        | "DB_BLOCKS"
        | "DB_CPU_TIME"
        | "ROWS_PROCESSED"
        | "REQUEST_SIZE"
        | "RESPONSE_SIZE"
        | "EXEC_TIME"
        | "CALLOUT_TIME"
        | "NUMBER_SOQL_QUERIES"
        | "ROW_COUNT"
        | "NUMBER_EXCEPTION_FILTERS"
        | "NUMBER_COLUMNS"
        | "AVERAGE_ROW_SIZE"
        | "API_VERSION" => "Number",
        "IS_SCHEDULED" | "USER_INITIATED_LOGOUT" | "IS_LONG_RUNNING_REQUEST" => "Boolean",
        "TIMESTAMP_DERIVED" => "DateTime",
        "CLIENT_IP" | "SOURCE_IP" => "IP",
        "QUERY" | "STACK_TRACE" | "EXCEPTION_MESSAGE" | "REPORT_DESCRIPTION" => "EscapedString",
        _ => "String",
    }
}

const ORG_ID_15: &str = "00D000000000001";

/// (15-character user Id, username). The last one stands for Salesforce's Automated Process user.
pub(super) const USERS: &[(&str, &str)] = &[
    ("0055g00000AbCdE", "integration@example.com"),
    ("0055g00000FgHiJ", "zoe.angstrom@example.com"),
    ("0055g00000KlMnO", "j.smith@example.com"),
    ("0055g00000PqRsT", "tokyo.ops@example.co.jp"),
    ("0055g00000UvWxY", "autoproc@00d000000000001.example"),
];

pub(super) struct RowContext<'a> {
    pub(super) event_type: &'a str,
    /// Which edge case this row carries: 1 commas and quotes, 2 line breaks, 3 non-ASCII,
    /// 4 empty optional values, 5 `Salesforce.com IP`; the others are plain.
    pub(super) flavour: usize,
    pub(super) ts: OffsetDateTime,
    pub(super) user: usize,
    pub(super) run_time: u32,
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn push_random(out: &mut String, rng: &mut fastrand::Rng, alphabet: &[u8], len: usize) {
    for _ in 0..len {
        out.push(char::from(alphabet[rng.usize(0..alphabet.len())]));
    }
}

/// A random 15-character Id with the given 3-character key prefix.
fn push_random_id15(out: &mut String, rng: &mut fastrand::Rng, prefix: &str) {
    out.push_str(prefix);
    out.push_str("5g0000");
    push_random(out, rng, ALNUM, 6);
}

fn pick<'a>(rng: &mut fastrand::Rng, options: &[&'a str]) -> &'a str {
    options[rng.usize(0..options.len())]
}

/// Columns real logs often leave empty.
const OPTIONAL_COLUMNS: &[&str] = &[
    "URI_ID_DERIVED",
    "DB_CPU_TIME",
    "CALLOUT_TIME",
    "DB_BLOCKS",
    "ROWS_PROCESSED",
    "ROW_COUNT",
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "AVERAGE_ROW_SIZE",
    "SESSION_KEY",
    "LOGIN_KEY",
    "REQUEST_STATUS",
    "API_TYPE",
    "API_VERSION",
    "AUTHENTICATION_METHOD_REFERENCE",
    "LOGIN_SUB_TYPE",
    "RESOLUTION_TYPE",
    "ENTITY_NAME",
    "DASHBOARD_ID",
    "DASHBOARD_COMPONENT_ID",
    "SOURCE_IP",
];

pub(super) fn column_value(
    column: &str,
    ctx: &RowContext<'_>,
    rng: &mut fastrand::Rng,
    out: &mut String,
) {
    let f = ctx.flavour;
    let empty = f == 4;
    let (user_id, username) = USERS[ctx.user];
    // Optional columns are left empty in the rows that carry the "empty values" edge case.
    if empty && OPTIONAL_COLUMNS.contains(&column) {
        return;
    }
    match column {
        "EVENT_TYPE" => out.push_str(ctx.event_type),
        "TIMESTAMP" => {
            // Some types drop the milliseconds; Logout is one of them here.
            push_log_timestamp(out, ctx.ts, ctx.event_type != "Logout");
        }
        "TIMESTAMP_DERIVED" => push_iso_millis(out, ctx.ts),
        "REQUEST_ID" => push_random(out, rng, ALNUM, 22),
        "ORGANIZATION_ID" => out.push_str(ORG_ID_15),
        "USER_ID" => out.push_str(user_id),
        "USER_ID_DERIVED" => out.push_str(&with_checksum(user_id)),
        "URI_ID_DERIVED" if ctx.event_type != "Login" => {
            let mut id = String::with_capacity(15);
            push_random_id15(&mut id, rng, "001");
            out.push_str(&with_checksum(&id));
        }
        "RUN_TIME" | "EXEC_TIME" => {
            let _ = write!(out, "{}", ctx.run_time);
        }
        "CPU_TIME" => {
            let _ = write!(out, "{}", rng.u32(0..=ctx.run_time));
        }
        "DB_TOTAL_TIME" => {
            // Nanoseconds, as Salesforce reports it.
            let _ = write!(out, "{}", u64::from(ctx.run_time) * rng.u64(1_000..400_000));
        }
        "DB_CPU_TIME" | "CALLOUT_TIME" => {
            let _ = write!(out, "{}", rng.u32(0..=ctx.run_time / 2));
        }
        "DB_BLOCKS" | "ROWS_PROCESSED" | "ROW_COUNT" | "REQUEST_SIZE" | "RESPONSE_SIZE"
        | "AVERAGE_ROW_SIZE" => {
            let _ = write!(out, "{}", rng.u32(0..50_000));
        }
        "NUMBER_SOQL_QUERIES" | "NUMBER_EXCEPTION_FILTERS" | "NUMBER_COLUMNS" => {
            let _ = write!(out, "{}", rng.u32(0..40));
        }
        "URI" => out.push_str(match ctx.event_type {
            "Login" => "/services/oauth2/token",
            "API" => "/services/data/v64.0/query",
            "URI" => pick(
                rng,
                &[
                    "/lightning/o/Account/list",
                    "/lightning/r/Opportunity/0065g00000XyZaB/view",
                    "/lightning/page/home",
                ],
            ),
            "Report" => "/lightning/r/Report/00O5g00000AbCdE/view",
            "ApexExecution" => "/apex/InvoicePage",
            _ => "/services/data/v64.0/sobjects",
        }),
        "SESSION_KEY" | "LOGIN_KEY" => {
            push_random(out, rng, BASE64_ALPHABET, 16);
        }
        "USER_TYPE" => out.push_str(if ctx.user == 4 { "Automated" } else { "Standard" }),
        "REQUEST_STATUS" => {
            out.push_str(pick(rng, &["S", "S", "S", "S", "F", "U"]));
        }
        "LOGIN_TYPE" => out.push_str(pick(
            rng,
            &["Remote Access 2.0", "Application", "SAML Sfdc Initiated SSO"],
        )),
        "BROWSER_TYPE" | "USER_AGENT" => out.push_str(if f == 1 {
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        } else if empty {
            ""
        } else {
            pick(
                rng,
                &[
                    "Java (Salesforce.com)",
                    "python-requests/2.32.3",
                    "salesforce-jwt/0.1",
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
                ],
            )
        }),
        "API_TYPE" => {
            out.push_str(pick(rng, &["R", "P", "E", "REST", "SOAP Partner"]));
        }
        "API_VERSION" => {
            out.push_str(pick(rng, &["64.0", "62.0", "58.0"]));
        }
        "USER_NAME" => out.push_str(username),
        "TLS_PROTOCOL" => out.push_str(pick(rng, &["TLSv1.3", "TLSv1.2"])),
        "CIPHER_SUITE" => out.push_str(pick(
            rng,
            &["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"],
        )),
        "AUTHENTICATION_METHOD_REFERENCE" | "LOGIN_SUB_TYPE" if rng.bool() => {
            out.push_str(if column == "LOGIN_SUB_TYPE" {
                "oauthjwtbearer"
            } else {
                "pwd"
            });
        }
        "LOGIN_STATUS" => out.push_str(pick(
            rng,
            &[
                "LOGIN_NO_ERROR",
                "LOGIN_NO_ERROR",
                "LOGIN_NO_ERROR",
                "LOGIN_ERROR_INVALID_PASSWORD",
            ],
        )),
        "CLIENT_IP" | "SOURCE_IP" => {
            if f == 5 && column == "CLIENT_IP" {
                // Requests Salesforce makes to itself carry this literal instead of an address.
                out.push_str("Salesforce.com IP");
            } else if rng.u8(0..5) == 0 {
                let _ = write!(out, "2001:db8::{:x}", rng.u16(1..0xffff));
            } else {
                let _ = write!(
                    out,
                    "{}.{}",
                    pick(rng, &["203.0.113", "198.51.100", "192.0.2"]),
                    rng.u8(1..255)
                );
            }
        }
        "SESSION_TYPE" => out.push_str(pick(rng, &["Oauth2", "UI", "API"])),
        "SESSION_LEVEL" => out.push_str("STANDARD"),
        "PLATFORM_TYPE" => out.push_str(pick(rng, &["1015", "2003", "4000"])),
        "RESOLUTION_TYPE" => {
            out.push_str(pick(rng, &["1920x1080", "2560x1440", "9999"]));
        }
        "APP_TYPE" => out.push_str("1000"),
        "CLIENT_VERSION" => out.push_str("9998"),
        // Salesforce writes some booleans as 1/0 and others as true/false: a parser meets both.
        "USER_INITIATED_LOGOUT" | "IS_LONG_RUNNING_REQUEST" => {
            out.push_str(if rng.u8(0..4) == 0 { "1" } else { "0" });
        }
        "IS_SCHEDULED" => out.push_str(if rng.u8(0..3) == 0 { "true" } else { "false" }),
        "CLIENT_NAME" => match f {
            1 => out.push_str("SIEM Connector, \"prod\" instance"),
            3 => out.push_str("Zoë's Ångström Sync"),
            4 => {}
            _ => out.push_str(pick(rng, &["salesforce-jwt", "DataLoader", "Workbench"])),
        },
        "METHOD_NAME" => out.push_str(pick(
            rng,
            &["query", "queryMore", "describeSObjects", "create", "update"],
        )),
        "ENTITY_NAME" => {
            out.push_str(pick(
                rng,
                &["Account", "Contact", "Opportunity", "Case", "EventLogFile"],
            ));
        }
        "QUERY" => out.push_str(match f {
            1 => "SELECT Id, Name FROM Contact WHERE Title = 'VP, \"Sales\"' AND LastName = 'O\\'Brien'",
            2 => "SELECT Id,\n       Name,\n       (SELECT Id FROM Contacts)\nFROM Account\nWHERE CreatedDate = LAST_N_DAYS:7",
            3 => "SELECT Id FROM Account WHERE BillingCity = '東京' OR Owner.Name = 'Zoë Ångström'",
            4 => "",
            _ => pick(
                rng,
                &[
                    "SELECT Id, Name FROM Account LIMIT 200",
                    "SELECT Id FROM Case WHERE Status = 'New'",
                    "SELECT COUNT() FROM Opportunity",
                ],
            ),
        }),
        "REFERRER_URI" => out.push_str(match f {
            1 => "https://acme.lightning.force.com/lightning/o/Account/list?q=\"Smith, John\"&filterName=Recent",
            3 => "https://acme.my.site.com/東京/s/article/Zoë",
            4 => "",
            _ => "https://acme.lightning.force.com/lightning/page/home",
        }),
        "ENTRY_POINT" => out.push_str(match f {
            1 => "AccountTrigger on Account trigger event BeforeInsert, BeforeUpdate",
            3 => "VF- /apex/Übersicht",
            _ => pick(
                rng,
                &[
                    "VF- /apex/InvoicePage",
                    "InvoiceBatch",
                    "RestResource /services/apexrest/orders",
                ],
            ),
        }),
        "QUIDDITY" => out.push_str(pick(rng, &["A", "R", "V", "B", "Q", "W"])),
        "ORIGIN" => out.push_str(pick(
            rng,
            &[
                "ReportRunFromLightning",
                "ReportRunAndNotificationSent",
                "DashboardComponentUpdated",
            ],
        )),
        "DASHBOARD_ID" | "DASHBOARD_COMPONENT_ID" if rng.bool() => {
            push_random_id15(out, rng, "01Z");
        }
        "REPORT_ID" => {
            push_random_id15(out, rng, "00O");
        }
        "DISPLAY_TYPE" => out.push_str(pick(rng, &["D", "S", "T", "M"])),
        "RENDERING_TYPE" => out.push_str(pick(rng, &["W", "H", "J", "E"])),
        "REPORT_DESCRIPTION" => out.push_str(match f {
            1 => "Pipeline by stage, \"committed\" only",
            2 => "Quarterly pipeline\nExcludes closed-lost\r\nOwner: sales ops",
            3 => "Umsätze nach Region – 東京 / Zoë Ångström",
            4 => "",
            _ => "Open cases by owner",
        }),
        "SORT" => out.push_str(pick(rng, &["Amount DESC,Name ASC", "CreatedDate ASC", ""])),
        "EXCEPTION_TYPE" => out.push_str(pick(
            rng,
            &[
                "System.NullPointerException",
                "System.LimitException",
                "System.DmlException",
            ],
        )),
        "EXCEPTION_MESSAGE" => out.push_str(match f {
            1 => "Insert failed. First exception on row 0; first error: REQUIRED_FIELD_MISSING, \"Name\" is required",
            3 => "Attempt to de-reference a null object (Zoë Ångström, 東京)",
            _ => "Attempt to de-reference a null object",
        }),
        "STACK_TRACE" => out.push_str(match f {
            4 => "",
            _ => "Class.InvoiceService.process: line 42, column 1\nClass.InvoiceBatch.execute: line 17, column 1\nAnonymousBlock: line 1, column 1",
        }),
        "EXCEPTION_CATEGORY" => out.push_str(pick(rng, &["APEX_CODE", "VISUALFORCE", "TRIGGER"])),
        // Columns without a generator of their own stay empty, as many real ones often are.
        _ => {}
    }
}

pub(super) fn push_quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    if value.contains('"') {
        out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
    } else {
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'"');
}

/// `yyyyMMddHHmmss.SSS` in GMT (the `TIMESTAMP` column), optionally without the milliseconds.
fn push_log_timestamp(out: &mut String, ts: OffsetDateTime, millis: bool) {
    let ts = ts.to_offset(UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    );
    if millis {
        let _ = write!(out, ".{:03}", ts.millisecond());
    }
}

/// ISO 8601 with milliseconds and `Z` (the `TIMESTAMP_DERIVED` column).
fn push_iso_millis(out: &mut String, ts: OffsetDateTime) {
    let ts = ts.to_offset(UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.millisecond()
    );
}

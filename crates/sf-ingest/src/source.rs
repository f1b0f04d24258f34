//! `--source` / `sources =`: which kinds of Salesforce security logs an org is collected from.

use std::fmt;
use std::str::FromStr;

use salesforce_jwt::objects::{EventObject, ObjectKind};

/// A kind of log, in Salesforce's own names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Event Monitoring log files, collected exactly once through the library's `Collector`.
    #[default]
    EventLogFile,
    /// A Real-Time Event Monitoring storage object (`LoginEvent`...), a threat-detection store
    /// or `SetupAuditTrail`, collected exactly once into the same output and checkpoint.
    Object(EventObject),
}

impl FromStr for Source {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "EventLogFile" {
            return Ok(Source::EventLogFile);
        }
        // Objects of your own: `My_Event__b:big`, `My_Store__c:standard`.
        if let Some((name, kind)) = text.split_once(':') {
            let kind = match kind.trim().to_ascii_lowercase().as_str() {
                "big" => ObjectKind::BigObject,
                "standard" => ObjectKind::Standard,
                "eventlog" => ObjectKind::EventLogObject,
                other => {
                    return Err(format!(
                        "source {text:?}: the kind after ':' is {other:?}; use big (an object \
                         queried by EventDate, like LoginEvent), standard (queried by \
                         CreatedDate and Id, like SetupAuditTrail) or eventlog (an Event Log \
                         Object queried by Timestamp, like LoginEventLog)"
                    ));
                }
            };
            return EventObject::custom(name, kind)
                .map(Source::Object)
                .map_err(|e| format!("source {text:?}: {e}"));
        }
        if let Some(object) = EventObject::named(text) {
            return Ok(Source::Object(object));
        }
        let hint = match text.strip_suffix("Stream") {
            // The streaming channels cannot be queried; their storage objects can.
            Some(stored) if EventObject::named(stored).is_some() => format!(
                " ({text} is a streaming channel, which cannot be queried; collect its storage \
                 object {stored})"
            ),
            _ => String::new(),
        };
        let known: Vec<String> = EventObject::catalogue()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        Err(format!(
            "source {text:?} is not available{hint}: use EventLogFile, one of {}, an Event Log \
             Object (LoginEventLog, ApiTotalUsageEventLog, RestApiEventLog...), or an object of \
             your own as NAME:big, NAME:standard or NAME:eventlog",
            known.join(", ")
        ))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::EventLogFile => f.write_str("EventLogFile"),
            Source::Object(object) => f.write_str(object.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_object_and_objects_of_your_own_are_sources() {
        for object in EventObject::catalogue() {
            assert_eq!(
                object.name().parse::<Source>(),
                Ok(Source::Object(object.clone()))
            );
        }
        assert_eq!("EventLogFile".parse::<Source>(), Ok(Source::EventLogFile));
        for name in salesforce_jwt::event_log_objects::catalogue() {
            match name.to_lowercase().parse::<Source>() {
                Ok(Source::Object(o)) => {
                    assert_eq!((o.name(), o.kind()), (name, ObjectKind::EventLogObject));
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        match "NewEventLog:eventlog".parse::<Source>() {
            Ok(Source::Object(o)) => assert_eq!(o.kind(), ObjectKind::EventLogObject),
            other => panic!("{other:?}"),
        }
        match "My_Event__b:big".parse::<Source>() {
            Ok(Source::Object(o)) => {
                assert_eq!((o.name(), o.kind()), ("My_Event__b", ObjectKind::BigObject));
            }
            other => panic!("{other:?}"),
        }
        let stream = "LoginEventStream".parse::<Source>().unwrap_err();
        assert!(
            stream.contains("streaming channel") && stream.contains("storage object LoginEvent"),
            "{stream}"
        );
        let kind = "My_Event__b:huge".parse::<Source>().unwrap_err();
        assert!(
            kind.contains("use big") && kind.contains("standard"),
            "{kind}"
        );
        let unknown = "Nope".parse::<Source>().unwrap_err();
        assert!(
            unknown.contains("SetupAuditTrail") && unknown.contains("NAME:big"),
            "{unknown}"
        );
    }
}

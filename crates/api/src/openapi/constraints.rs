//! What the server enforces, written into the document from the domain's own constants, so a
//! generated client or a validator refuses what the server refuses and the two cannot drift.
//!
//! The DTOs carry the wire shape as plain strings and numbers (the domain's parsers check them,
//! and answer 422 naming the field). The derive cannot see those parsers, so this pass adds,
//! on the serialized document: `format: uuid` on every id, named `enum` schemas for the closed
//! vocabularies, numeric bounds, the patterns of times and of the `Idempotency-Key` and
//! `If-Match` headers, and the 400 with which every operation refuses an unknown query parameter.

use clinicflow_domain::appointment::DURATION_MINUTES;
use clinicflow_domain::idempotency::MAX_KEY_LEN;
use clinicflow_domain::page::{MAX_PAGE, MAX_PAGE_SIZE};
use clinicflow_domain::practitioner::{BUFFER_MINUTES, SLOT_MINUTES};
use clinicflow_domain::{
    AppointmentStatus, AuditAction, ExceptionKind, Outcome, QueueStatus, ResourceType, Role, Sex,
    TriageCategory, Urgency,
};
use clinicflow_domain::{DeliveryStatus, EventKind};
use serde_json::{Map, Value, json};

/// Properties that end in `_id` but are not clinicflow ids.
const NOT_UUIDS: [&str; 1] = ["member_id"];

/// `HH:MM`, 00:00 to 23:59, as the schedule's times are parsed.
pub const TIME_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// An `If-Match` the server reads: `*`, one version's entity tag (strong or weak), or empty.
pub const IF_MATCH_PATTERN: &str = "^(|\\*|(W/)?\"[0-9]+\")$";

/// An `Idempotency-Key`: visible ASCII, no spaces.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]+$";

/// A closed vocabulary: its schema name, and its values as the domain writes them.
pub struct Vocabulary {
    /// The component schema's name.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
    /// Every value.
    pub values: Vec<&'static str>,
}

/// Every vocabulary the document names, from the domain.
pub fn vocabularies() -> Vec<Vocabulary> {
    let vocabulary = |name, description, values| Vocabulary {
        name,
        description,
        values,
    };
    vec![
        vocabulary(
            "Sex",
            "A patient's sex.",
            Sex::ALL.iter().map(Sex::as_str).collect(),
        ),
        vocabulary(
            "Urgency",
            "How soon an appointment's patient needs to be seen.",
            Urgency::ALL.iter().map(Urgency::as_str).collect(),
        ),
        vocabulary(
            "AppointmentStatus",
            "Where an appointment is in its life cycle.",
            AppointmentStatus::ALL
                .iter()
                .map(AppointmentStatus::as_str)
                .collect(),
        ),
        vocabulary(
            "TriageCategory",
            "A Manchester Triage System category, most urgent first.",
            TriageCategory::ALL
                .iter()
                .map(TriageCategory::as_str)
                .collect(),
        ),
        vocabulary(
            "QueueStatus",
            "Where a queue entry is.",
            QueueStatus::ALL.iter().map(QueueStatus::as_str).collect(),
        ),
        vocabulary(
            "Role",
            "A staff user's role.",
            Role::STAFF.iter().map(Role::as_str).collect(),
        ),
        vocabulary(
            "RecordedRole",
            "The role an audited actor had: a staff role, or `system` for clinicflow's workers.",
            Role::STAFF
                .iter()
                .chain(&[Role::System])
                .map(Role::as_str)
                .collect(),
        ),
        vocabulary(
            "EventKind",
            "What an outbox message announces.",
            EventKind::ALL.iter().map(EventKind::as_str).collect(),
        ),
        vocabulary(
            "DeliveryStatus",
            "Where an outbox message's delivery is.",
            DeliveryStatus::ALL
                .iter()
                .map(DeliveryStatus::as_str)
                .collect(),
        ),
        vocabulary(
            "Weekday",
            "A day of the week.",
            vec!["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        ),
        vocabulary(
            "ExceptionKind",
            "What a schedule exception does.",
            ExceptionKind::ALL
                .iter()
                .map(ExceptionKind::as_str)
                .collect(),
        ),
        vocabulary(
            "AuditAction",
            "What an audited request did.",
            AuditAction::NAMES.to_vec(),
        ),
        vocabulary(
            "ResourceType",
            "What kind of record an audit event is about.",
            ResourceType::NAMES.to_vec(),
        ),
        vocabulary(
            "AuditOutcome",
            "Whether an audited request was allowed.",
            Outcome::NAMES.to_vec(),
        ),
    ]
}

/// Which property of which schemas holds which vocabulary. A schema `X` covers its
/// `XSelection` copy too.
const VOCABULARY_OF: &[(&[&str], &str, &str)] = &[
    (&["PatientIn", "PatientPatch", "PatientOut"], "sex", "Sex"),
    (&["BookIn", "AppointmentOut"], "urgency", "Urgency"),
    (&["AppointmentOut"], "status", "AppointmentStatus"),
    (
        &[
            "JoinIn",
            "ActIn",
            "EntryOut",
            "BoardEntryOut",
            "PriorityOut",
        ],
        "category",
        "TriageCategory",
    ),
    (&["EntryOut", "BoardEntryOut"], "status", "QueueStatus"),
    (&["UserIn", "UserPatch", "UserOut", "MeOut"], "role", "Role"),
    (&["AuditEventOut"], "actor_role", "RecordedRole"),
    (&["AuditEventOut"], "action", "AuditAction"),
    (&["AuditEventOut"], "resource_type", "ResourceType"),
    (&["AuditEventOut"], "outcome", "AuditOutcome"),
    (&["MessageOut"], "event", "EventKind"),
    (&["MessageOut"], "status", "DeliveryStatus"),
    (&["RuleDto"], "weekday", "Weekday"),
    (&["ExceptionOut"], "kind", "ExceptionKind"),
];

/// Query parameters that hold a vocabulary, by operation id.
const PARAMETER_VOCABULARY: &[(&str, &str, &str)] = &[
    ("list_appointments", "status", "AppointmentStatus"),
    ("list_outbox", "status", "DeliveryStatus"),
];

/// The inclusive bounds of numeric properties, by schema.
fn bounds() -> Vec<(&'static [&'static str], &'static str, u64, u64)> {
    let range = |r: &std::ops::RangeInclusive<u32>| (u64::from(*r.start()), u64::from(*r.end()));
    let (duration_min, duration_max) = range(&DURATION_MINUTES);
    let (slot_min, slot_max) = range(&SLOT_MINUTES);
    let (buffer_min, buffer_max) = range(&BUFFER_MINUTES);
    vec![
        (
            &["BookIn", "RescheduleIn"][..],
            "duration_minutes",
            duration_min,
            duration_max,
        ),
        (
            &["PractitionerIn", "PractitionerPatch", "RuleDto"][..],
            "slot_minutes",
            slot_min,
            slot_max,
        ),
        (
            &["PractitionerIn", "PractitionerPatch"][..],
            "buffer_minutes",
            buffer_min,
            buffer_max,
        ),
    ]
}

/// The inclusive bounds of paging query parameters, wherever they appear.
fn parameter_bounds() -> [(&'static str, u64, u64); 2] {
    [
        ("page", 1, MAX_PAGE),
        ("page_size", 1, u64::from(MAX_PAGE_SIZE)),
    ]
}

/// Applies every constraint above to the serialized document.
pub fn apply(doc: &mut Value) {
    let reference = |name: &str| format!("#/components/schemas/{name}");
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, object) in schemas.iter_mut() {
        let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        let base = name.strip_suffix("Selection").unwrap_or(name);
        for (property, schema) in properties.iter_mut() {
            if is_id(property) {
                set_uuid(schema);
            }
            for (owners, field, vocabulary) in VOCABULARY_OF {
                if property == field && owners.contains(&base) {
                    *schema = named(schema, &reference(vocabulary));
                }
            }
            for (owners, field, min, max) in bounds() {
                if property == field && owners.contains(&base) {
                    set_bounds(schema, min, max);
                }
            }
            if base == "RuleDto" && (property == "start" || property == "end") {
                schema["pattern"] = json!(TIME_PATTERN);
            }
        }
    }
    refer_page_items(schemas);
    for vocabulary in vocabularies() {
        schemas.insert(
            vocabulary.name.to_owned(),
            json!({
                "type": "string",
                "description": vocabulary.description,
                "enum": vocabulary.values,
            }),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        shorten_summary(op);
        // Every operation refuses a query parameter it does not take (`routing::guard`).
        if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
            responses
                .entry("400")
                .or_insert_with(|| json!({ "$ref": "#/components/responses/BadRequest" }));
        }
        let Some(parameters) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap_or_default().to_owned();
            let Some(schema) = parameter.get_mut("schema") else {
                continue;
            };
            if is_id(&name) {
                set_uuid(schema);
            }
            for (operation, field, vocabulary) in PARAMETER_VOCABULARY {
                if *operation == id && *field == name {
                    *schema = named(schema, &reference(vocabulary));
                }
            }
            for (field, min, max) in parameter_bounds() {
                if field == name && parameter["in"] == "query" {
                    set_bounds(&mut parameter["schema"], min, max);
                }
            }
            match name.as_str() {
                "If-Match" => parameter["schema"]["pattern"] = json!(IF_MATCH_PATTERN),
                "Idempotency-Key" => {
                    let schema = &mut parameter["schema"];
                    schema["pattern"] = json!(IDEMPOTENCY_KEY_PATTERN);
                    schema["minLength"] = json!(1);
                    schema["maxLength"] = json!(MAX_KEY_LEN);
                }
                _ => {}
            }
        }
    }
}

/// Makes the items of every generic page (`PageOut_X`, `CursorPageOut_X`) a reference to `X`,
/// where the derive inlined a copy of `X` (a generator would make a second class of it).
fn refer_page_items(schemas: &mut Map<String, Value>) {
    let names: Vec<String> = schemas.keys().cloned().collect();
    for name in &names {
        let Some(item) = name
            .strip_prefix("PageOut_")
            .or_else(|| name.strip_prefix("CursorPageOut_"))
        else {
            continue;
        };
        if !schemas.contains_key(item) {
            continue;
        }
        let items = &mut schemas[name]["properties"]["results"]["items"];
        if items.get("properties").is_some() {
            *items = json!({ "$ref": format!("#/components/schemas/{item}") });
        }
    }
}

/// The longest operation summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 80;

/// Cuts an operation's summary to its first clause, on one line, and keeps the whole text as
/// the start of its description: the derive takes a handler's whole first paragraph as the
/// summary, which generators turn into a function's one-line docstring.
fn shorten_summary(op: &mut Value) {
    let Some(full) = op["summary"].as_str() else {
        return;
    };
    let full = full.split_whitespace().collect::<Vec<_>>().join(" ");
    // "`GET /me`: who the token speaks for" says the route twice.
    let text = match full
        .strip_prefix('`')
        .and_then(|rest| rest.split_once("`: "))
    {
        Some((_, rest)) => rest,
        None => full.as_str(),
    };
    let end = [". ", ": ", "; ", " ("]
        .iter()
        .filter_map(|stop| text.find(stop))
        .min()
        .unwrap_or(text.len());
    let clause = text[..end].trim_end_matches('.');
    let mut summary = clause.to_owned();
    while summary.chars().count() > MAX_SUMMARY_CHARS {
        // Whole words: drop the last one until it fits.
        let Some((shorter, _)) = summary.rsplit_once(' ') else {
            summary = summary.chars().take(MAX_SUMMARY_CHARS).collect();
            break;
        };
        summary = shorter.trim_end_matches(',').to_owned();
    }
    if let Some(first) = summary.get(..1) {
        summary = first.to_uppercase() + &summary[1..];
    }
    if summary != full {
        let description = match op["description"].as_str() {
            Some(rest) if !rest.is_empty() => format!("{full}\n\n{rest}"),
            _ => full.clone(),
        };
        op["description"] = json!(description);
    }
    op["summary"] = json!(summary);
}

/// Whether a property or parameter of this name holds a clinicflow id.
fn is_id(name: &str) -> bool {
    (name == "id" || name.ends_with("_id")) && !NOT_UUIDS.contains(&name)
}

/// Whether a schema allows `null` (`type: [X, "null"]`).
fn nullable(schema: &Value) -> bool {
    schema["type"]
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t == "null"))
}

/// Whether a schema is a string, possibly nullable.
fn is_string(schema: &Value) -> bool {
    schema["type"] == "string"
        || schema["type"]
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t == "string"))
}

fn set_uuid(schema: &mut Value) {
    if is_string(schema) {
        schema["format"] = json!("uuid");
    }
}

fn set_bounds(schema: &mut Value, min: u64, max: u64) {
    if schema.get("type").is_some() {
        schema["minimum"] = json!(min);
        schema["maximum"] = json!(max);
    }
}

/// A reference to a named schema in place of an inline string, keeping the description and
/// whether `null` is allowed.
fn named(schema: &Value, reference: &str) -> Value {
    if !is_string(schema) {
        return schema.clone();
    }
    let mut out = Map::new();
    if nullable(schema) {
        out.insert(
            "anyOf".into(),
            json!([{ "$ref": reference }, { "type": "null" }]),
        );
    } else {
        out.insert("$ref".into(), json!(reference));
    }
    if let Some(description) = schema.get("description") {
        out.insert("description".into(), description.clone());
    }
    Value::Object(out)
}

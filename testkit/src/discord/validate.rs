//! Request-body validation for the emulator: the structural rules of the
//! official OpenAPI schemas (`MessageCreateRequest`, `MessageEditRequestPartial`,
//! `RichEmbed*`, `MessageAllowedMentionsRequest`, action rows and buttons) plus
//! the stricter documented limits the spec misses (content ≤ 2000, embed total
//! ≤ 6000, `parse` vs explicit ids, legacy ≤ 5 rows, link-button rules, unique
//! `custom_id`s). Violations become Discord's 50035 body with nested field
//! errors, e.g. `{"embeds":{"0":{"title":{"_errors":[…]}}}}`.

use serde_json::{Map, Value, json};

/// Collected field errors, keyed by their path.
#[derive(Debug, Default)]
pub struct FieldErrors {
    errors: Vec<(Vec<String>, &'static str, String)>,
}

impl FieldErrors {
    fn push(&mut self, path: &[&str], code: &'static str, message: impl Into<String>) {
        self.errors.push((
            path.iter().map(|s| (*s).to_owned()).collect(),
            code,
            message.into(),
        ));
    }

    /// No errors.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Discord's nested `errors` object.
    pub fn to_json(&self) -> Value {
        fn insert(node: &mut Map<String, Value>, path: &[String], error: Value) {
            match path.split_first() {
                None => {
                    if let Value::Array(items) = node
                        .entry("_errors")
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        items.push(error);
                    }
                }
                Some((head, rest)) => {
                    if let Value::Object(child) = node
                        .entry(head.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        insert(child, rest, error);
                    }
                }
            }
        }
        let mut root = Map::new();
        for (path, code, message) in &self.errors {
            insert(&mut root, path, json!({"code": code, "message": message}));
        }
        Value::Object(root)
    }
}

/// Which request is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /channels/{id}/messages`.
    Create,
    /// `PATCH /channels/{id}/messages/{id}`.
    Edit,
}

const CREATE_FLAGS: u64 = (1 << 2) | (1 << 12) | (1 << 13) | (1 << 15);
const EDIT_FLAGS: u64 = (1 << 2) | (1 << 15);

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn max_len(
    errs: &mut FieldErrors,
    path: &[&str],
    v: Option<&Value>,
    max: usize,
    nullable: bool,
) -> usize {
    match v {
        None => 0,
        Some(Value::Null) if nullable => 0,
        Some(Value::String(s)) => {
            let n = chars(s);
            if n > max {
                errs.push(
                    path,
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {max} or fewer in length."),
                );
            }
            n
        }
        Some(_) => {
            errs.push(
                path,
                "STRING_TYPE_CONVERT",
                "Could not interpret value as string.",
            );
            0
        }
    }
}

/// Validates a create or edit body. `Ok(())` or the field errors; an empty
/// create is reported separately by [`is_empty_message`].
pub fn validate(body: &Value, kind: Kind) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let Some(obj) = body.as_object() else {
        errs.push(
            &[],
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        );
        return errs;
    };
    max_len(&mut errs, &["content"], obj.get("content"), 2000, true);
    if kind == Kind::Create {
        match obj.get("nonce") {
            None | Some(Value::Null) | Some(Value::Number(_)) => {}
            Some(Value::String(s)) if chars(s) <= 25 => {}
            Some(Value::String(_)) => errs.push(
                &["nonce"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 25 or fewer in length.",
            ),
            Some(_) => errs.push(
                &["nonce"],
                "NONCE_TYPE_INVALID",
                "Nonce must be a string or integer.",
            ),
        }
        match obj.get("enforce_nonce") {
            None | Some(Value::Null) | Some(Value::Bool(_)) => {}
            Some(_) => errs.push(
                &["enforce_nonce"],
                "BASE_TYPE_BAD_TYPE",
                "Must be a boolean.",
            ),
        }
    }
    match obj.get("flags") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            let allowed = if kind == Kind::Create {
                CREATE_FLAGS
            } else {
                EDIT_FLAGS
            };
            if n.as_u64().is_none_or(|f| f & !allowed != 0) {
                errs.push(&["flags"], "BASE_TYPE_CHOICES", "Invalid message flags.");
            }
        }
        Some(_) => errs.push(&["flags"], "NUMBER_TYPE_COERCE", "Value is not int."),
    }
    validate_embeds(&mut errs, obj.get("embeds"));
    validate_allowed_mentions(&mut errs, obj.get("allowed_mentions"));
    validate_components(&mut errs, obj.get("components"));
    errs
}

fn validate_embeds(errs: &mut FieldErrors, v: Option<&Value>) {
    let embeds = match v {
        None | Some(Value::Null) => return,
        Some(Value::Array(a)) => a,
        Some(_) => return errs.push(&["embeds"], "LIST_TYPE_CONVERT", "Must be an array."),
    };
    if embeds.len() > 10 {
        errs.push(
            &["embeds"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        );
    }
    let mut total = 0usize;
    let trimmed = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |s| chars(s.trim()));
    for (i, e) in embeds.iter().enumerate() {
        let idx = i.to_string();
        let Some(e) = e.as_object() else {
            errs.push(
                &["embeds", &idx],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            );
            continue;
        };
        max_len(errs, &["embeds", &idx, "title"], e.get("title"), 256, true);
        max_len(
            errs,
            &["embeds", &idx, "description"],
            e.get("description"),
            4096,
            true,
        );
        max_len(errs, &["embeds", &idx, "url"], e.get("url"), 2048, true);
        total += trimmed(e.get("title")) + trimmed(e.get("description"));
        if let Some(c) = e.get("color").filter(|c| !c.is_null())
            && c.as_u64().is_none_or(|c| c > 0xFF_FFFF)
        {
            errs.push(
                &["embeds", &idx, "color"],
                "NUMBER_TYPE_MAX",
                "int value should be <= 16777215 and >= 0.",
            );
        }
        if let Some(f) = e.get("footer").and_then(Value::as_object) {
            max_len(
                errs,
                &["embeds", &idx, "footer", "text"],
                f.get("text"),
                2048,
                false,
            );
            total += trimmed(f.get("text"));
        }
        if let Some(a) = e.get("author").and_then(Value::as_object) {
            max_len(
                errs,
                &["embeds", &idx, "author", "name"],
                a.get("name"),
                256,
                false,
            );
            total += trimmed(a.get("name"));
        }
        if let Some(fields) = e.get("fields").and_then(Value::as_array) {
            if fields.len() > 25 {
                errs.push(
                    &["embeds", &idx, "fields"],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 25 or fewer in length.",
                );
            }
            for (j, f) in fields.iter().enumerate() {
                let jdx = j.to_string();
                for (name, max) in [("name", 256), ("value", 1024)] {
                    if f.get(name).is_none_or(Value::is_null) {
                        errs.push(
                            &["embeds", &idx, "fields", &jdx, name],
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        );
                    } else {
                        max_len(
                            errs,
                            &["embeds", &idx, "fields", &jdx, name],
                            f.get(name),
                            max,
                            false,
                        );
                    }
                }
                total += trimmed(f.get("name")) + trimmed(f.get("value"));
            }
        }
    }
    if total > 6000 {
        errs.push(
            &["embeds"],
            "MAX_EMBED_SIZE_EXCEEDED",
            "Embed size exceeds maximum size of 6000",
        );
    }
}

fn validate_allowed_mentions(errs: &mut FieldErrors, v: Option<&Value>) {
    let am = match v {
        None | Some(Value::Null) => return,
        Some(Value::Object(o)) => o,
        Some(_) => {
            return errs.push(
                &["allowed_mentions"],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            );
        }
    };
    let parse: Vec<&str> = am
        .get("parse")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for p in &parse {
        if !matches!(*p, "users" | "roles" | "everyone") {
            errs.push(
                &["allowed_mentions", "parse"],
                "BASE_TYPE_CHOICES",
                format!("Value must be one of {{'users', 'roles', 'everyone'}}, not {p}."),
            );
        }
    }
    for (field, parse_name) in [("users", "users"), ("roles", "roles")] {
        let ids = am.get(field).and_then(Value::as_array);
        if let Some(ids) = ids {
            if ids.len() > 100 {
                errs.push(
                    &["allowed_mentions", field],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 100 or fewer in length.",
                );
            }
            if ids.iter().any(|id| {
                id.as_str()
                    .is_none_or(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()))
            }) {
                errs.push(
                    &["allowed_mentions", field],
                    "SNOWFLAKE_TYPE_INVALID",
                    "Value is not snowflake.",
                );
            }
            if !ids.is_empty() && parse.contains(&parse_name) {
                errs.push(
                    &["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    format!("parse:[\"{field}\"] and {field}: [ids...] are mutually exclusive."),
                );
            }
        }
    }
}

fn validate_components(errs: &mut FieldErrors, v: Option<&Value>) {
    let rows = match v {
        None | Some(Value::Null) => return,
        Some(Value::Array(a)) => a,
        Some(_) => return errs.push(&["components"], "LIST_TYPE_CONVERT", "Must be an array."),
    };
    if rows.len() > 5 {
        errs.push(
            &["components"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 5 or fewer in length.",
        );
    }
    let mut ids = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let idx = i.to_string();
        if row.get("type").and_then(Value::as_u64) != Some(1) {
            errs.push(
                &["components", &idx, "type"],
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "Top-level components must be action rows.",
            );
            continue;
        }
        let children = row
            .get("components")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if children.is_empty() || children.len() > 5 {
            errs.push(
                &["components", &idx, "components"],
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 5 in length.",
            );
        }
        let selects = children
            .iter()
            .filter(|c| {
                c.get("type")
                    .and_then(Value::as_u64)
                    .is_some_and(|t| (3..=8).contains(&t) && t != 4)
            })
            .count();
        if selects > 0 && children.len() > 1 {
            errs.push(
                &["components", &idx, "components"],
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            );
        }
        for (j, c) in children.iter().enumerate() {
            let jdx = j.to_string();
            let path = ["components", idx.as_str(), "components", jdx.as_str()];
            let custom_id = c.get("custom_id").and_then(Value::as_str);
            if let Some(id) = custom_id {
                let n = chars(id);
                if n == 0 || n > 100 {
                    errs.push(
                        &[&path[..], &["custom_id"]].concat(),
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    );
                }
                if !ids.insert(id.to_owned()) {
                    errs.push(
                        &[&path[..], &["custom_id"]].concat(),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    );
                }
            }
            if c.get("type").and_then(Value::as_u64) != Some(2) {
                continue;
            }
            max_len(
                errs,
                &[&path[..], &["label"]].concat(),
                c.get("label"),
                80,
                true,
            );
            match c.get("style").and_then(Value::as_u64) {
                Some(1..=4) => {
                    if custom_id.is_none() {
                        errs.push(
                            &[&path[..], &["custom_id"]].concat(),
                            "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED",
                            "A custom id is required",
                        );
                    }
                    if c.get("url").is_some_and(|u| !u.is_null()) {
                        errs.push(
                            &[&path[..], &["url"]].concat(),
                            "BUTTON_COMPONENT_URL_NOT_ALLOWED",
                            "A url cannot be specified",
                        );
                    }
                }
                Some(5) => {
                    if custom_id.is_some() {
                        errs.push(
                            &[&path[..], &["custom_id"]].concat(),
                            "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                            "A custom id cannot be specified",
                        );
                    }
                    if c.get("url").and_then(Value::as_str).is_none() {
                        errs.push(
                            &[&path[..], &["url"]].concat(),
                            "BUTTON_COMPONENT_URL_REQUIRED",
                            "A url is required",
                        );
                    } else {
                        max_len(
                            errs,
                            &[&path[..], &["url"]].concat(),
                            c.get("url"),
                            512,
                            false,
                        );
                    }
                }
                Some(6) => {}
                _ => errs.push(
                    &[&path[..], &["style"]].concat(),
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3, 4, 5, 6}.",
                ),
            }
        }
    }
}

/// Whether a create body has nothing to show (Discord's 50006).
pub fn is_empty_message(body: &Value) -> bool {
    let nonempty_str = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let nonempty_arr = |k: &str| {
        body.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    !(nonempty_str("content")
        || nonempty_arr("embeds")
        || nonempty_arr("components")
        || nonempty_arr("sticker_ids")
        || body.get("poll").is_some_and(|p| !p.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: Value, kind: Kind) -> Value {
        validate(&body, kind).to_json()
    }

    #[test]
    fn content_over_2000_is_rejected_though_the_spec_allows_4000() {
        let e = errors(json!({"content": "x".repeat(2001)}), Kind::Create);
        assert_eq!(e["content"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH");
        assert!(validate(&json!({"content": "é".repeat(2000)}), Kind::Create).is_empty());
    }

    #[test]
    fn embed_limits() {
        let e = errors(
            json!({"embeds": [{"title": "t".repeat(257)}]}),
            Kind::Create,
        );
        assert_eq!(
            e["embeds"]["0"]["title"]["_errors"][0]["code"],
            "BASE_TYPE_MAX_LENGTH"
        );
        let eleven: Vec<Value> = (0..11).map(|_| json!({"title": "a"})).collect();
        assert!(!validate(&json!({ "embeds": eleven }), Kind::Create).is_empty());
        // each embed fine on its own, 7 × 1000 > 6000 in total
        let big: Vec<Value> = (0..7)
            .map(|_| json!({"description": "d".repeat(1000)}))
            .collect();
        let e = errors(json!({ "embeds": big }), Kind::Create);
        assert_eq!(e["embeds"]["_errors"][0]["code"], "MAX_EMBED_SIZE_EXCEEDED");
        let e = errors(
            json!({"embeds": [{"fields": [{"name": "n", "value": "v".repeat(1025)}, {"name": "x"}]}]}),
            Kind::Edit,
        );
        assert_eq!(
            e["embeds"]["0"]["fields"]["0"]["value"]["_errors"][0]["code"],
            "BASE_TYPE_MAX_LENGTH"
        );
        assert_eq!(
            e["embeds"]["0"]["fields"]["1"]["value"]["_errors"][0]["code"],
            "BASE_TYPE_REQUIRED"
        );
    }

    #[test]
    fn allowed_mentions_parse_and_ids_are_exclusive() {
        let e = errors(
            json!({"content": "a", "allowed_mentions": {"parse": ["users"], "users": ["1"]}}),
            Kind::Create,
        );
        assert_eq!(
            e["allowed_mentions"]["_errors"][0]["code"],
            "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"
        );
        assert!(
            validate(
                &json!({"content": "a", "allowed_mentions": {"parse": []}}),
                Kind::Create
            )
            .is_empty()
        );
        assert!(
            !validate(
                &json!({"content": "a", "allowed_mentions": {"parse": ["channels"]}}),
                Kind::Create
            )
            .is_empty()
        );
    }

    #[test]
    fn component_rules() {
        let button = |id: &str| json!({"type": 2, "style": 1, "label": "ok", "custom_id": id});
        let six: Vec<Value> = (0..6).map(|i| button(&i.to_string())).collect();
        assert!(
            !validate(
                &json!({"components": [{"type": 1, "components": six}]}),
                Kind::Create
            )
            .is_empty()
        );
        let dup = json!({"components": [{"type": 1, "components": [button("a"), button("a")]}]});
        assert_eq!(
            errors(dup, Kind::Create)["components"]["0"]["components"]["1"]["custom_id"]["_errors"]
                [0]["code"],
            "COMPONENT_CUSTOM_ID_DUPLICATED"
        );
        let link = json!({"components": [{"type": 1, "components": [{"type": 2, "style": 5, "url": "https://x", "custom_id": "a"}]}]});
        assert!(!validate(&link, Kind::Create).is_empty());
        let rows: Vec<Value> = (0..6)
            .map(|i| json!({"type": 1, "components": [button(&i.to_string())]}))
            .collect();
        assert!(!validate(&json!({ "components": rows }), Kind::Create).is_empty());
        let ok = json!({"components": [{"type": 1, "components": [button("approve:1"), button("deny:1")]}]});
        assert!(validate(&ok, Kind::Create).is_empty());
    }

    #[test]
    fn nonce_and_flags() {
        assert!(
            !validate(
                &json!({"content": "a", "nonce": "x".repeat(26)}),
                Kind::Create
            )
            .is_empty()
        );
        assert!(
            validate(
                &json!({"content": "a", "nonce": "x".repeat(25), "enforce_nonce": true}),
                Kind::Create
            )
            .is_empty()
        );
        assert!(!validate(&json!({"content": "a", "flags": 64}), Kind::Create).is_empty());
        assert!(validate(&json!({"content": "a", "flags": 4096}), Kind::Create).is_empty());
    }

    #[test]
    fn empty_message() {
        assert!(is_empty_message(&json!({})));
        assert!(is_empty_message(&json!({"content": "", "nonce": "n"})));
        assert!(!is_empty_message(&json!({"embeds": [{"title": "t"}]})));
    }
}

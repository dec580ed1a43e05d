//! Request-body validation for the emulator: the structural rules of the
//! official OpenAPI schemas (`MessageCreateRequest`, `MessageEditRequestPartial`,
//! `RichEmbed*`, `MessageAllowedMentionsRequest`, action rows and buttons) plus
//! the stricter documented limits the spec misses (content ≤ 2000, embed total
//! ≤ 6000, `parse` vs explicit ids, legacy ≤ 5 rows, link-button rules, unique
//! `custom_id`s, button styles and fields, `disabled`, component types a
//! message row may hold), the flags each kind of body may set, and
//! interaction responses: callback types per interaction type and MODAL
//! bodies (`ModalInteractionCallbackRequestData`, Label, Text Input, the
//! legacy action row). Violations become Discord's 50035 body with nested
//! field errors, e.g. `{"embeds":{"0":{"title":{"_errors":[…]}}}}`.

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

    fn push_at(&mut self, path: &[String], code: &'static str, message: impl Into<String>) {
        self.errors.push((path.to_vec(), code, message.into()));
    }

    /// Moves `other`'s errors under `prefix`.
    fn nest(&mut self, prefix: &str, other: FieldErrors) {
        for (mut path, code, message) in other.errors {
            path.insert(0, prefix.to_owned());
            self.errors.push((path, code, message));
        }
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
    /// A message an interaction sends: the `data` of callback type 4, or a
    /// follow-up (`POST /webhooks/{application_id}/{token}`); EPHEMERAL allowed.
    InteractionMessage,
    /// An interaction's edit: the `data` of callback type 7, or
    /// `PATCH /webhooks/{application_id}/{token}/messages/…`.
    InteractionEdit,
    /// The `data` of callback type 5 (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE):
    /// only the EPHEMERAL flag means anything.
    Deferred,
}

/// SUPPRESS_EMBEDS.
pub const SUPPRESS_EMBEDS: u64 = 1 << 2;
/// EPHEMERAL: only the user who triggered the interaction sees the message.
pub const EPHEMERAL: u64 = 1 << 6;
/// LOADING: a deferred interaction response not yet edited.
pub const LOADING: u64 = 1 << 7;
/// SUPPRESS_NOTIFICATIONS.
pub const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
/// IS_VOICE_MESSAGE.
pub const IS_VOICE_MESSAGE: u64 = 1 << 13;
/// IS_COMPONENTS_V2.
pub const IS_COMPONENTS_V2: u64 = 1 << 15;

const CREATE_FLAGS: u64 =
    SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE | IS_COMPONENTS_V2;
const EDIT_FLAGS: u64 = SUPPRESS_EMBEDS | IS_COMPONENTS_V2;
/// Interaction responses and follow-ups (`discord-api.md` §3.3).
const INTERACTION_FLAGS: u64 = CREATE_FLAGS | EPHEMERAL;
/// Type 5: "only the EPHEMERAL flag is valid".
const DEFERRED_FLAGS: u64 = EPHEMERAL;

impl Kind {
    fn allowed_flags(self) -> u64 {
        match self {
            Self::Create => CREATE_FLAGS,
            Self::Edit | Self::InteractionEdit => EDIT_FLAGS,
            Self::InteractionMessage => INTERACTION_FLAGS,
            Self::Deferred => DEFERRED_FLAGS,
        }
    }
}

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

/// Validates a message body of `kind`: the field errors (none when valid);
/// an empty create is reported separately by [`is_empty_message`].
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
    if kind != Kind::Deferred {
        max_len(&mut errs, &["content"], obj.get("content"), 2000, true);
    }
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
            if n.as_u64().is_none_or(|f| f & !kind.allowed_flags() != 0) {
                errs.push(&["flags"], "BASE_TYPE_CHOICES", "Invalid message flags.");
            }
        }
        Some(_) => errs.push(&["flags"], "NUMBER_TYPE_COERCE", "Value is not int."),
    }
    if kind == Kind::Deferred {
        return errs;
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

/// Component types a legacy message's action row may hold: a button, or one
/// of the select menus (string, user, role, mentionable, channel).
const MESSAGE_ROW_CHILDREN: [u64; 6] = [2, 3, 5, 6, 7, 8];

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
                    .is_some_and(|t| t != 2 && MESSAGE_ROW_CHILDREN.contains(&t))
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
            let at = |field: &'static str| [&path[..], &[field]].concat();
            let kind = c.get("type").and_then(Value::as_u64);
            if !kind.is_some_and(|t| MESSAGE_ROW_CHILDREN.contains(&t)) {
                errs.push(
                    &at("type"),
                    "COMPONENT_TYPE_INVALID",
                    "This component type cannot be used in a message action row.",
                );
                continue;
            }
            let custom_id = match c.get("custom_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) => Some(id.as_str()),
                Some(_) => {
                    errs.push(
                        &at("custom_id"),
                        "STRING_TYPE_CONVERT",
                        "Could not interpret value as string.",
                    );
                    None
                }
            };
            if let Some(id) = custom_id {
                let n = chars(id);
                if n == 0 || n > 100 {
                    errs.push(
                        &at("custom_id"),
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    );
                }
                if !ids.insert(id.to_owned()) {
                    errs.push(
                        &at("custom_id"),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    );
                }
            }
            if kind != Some(2) {
                if custom_id.is_none() {
                    errs.push(
                        &at("custom_id"),
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    );
                }
                continue;
            }
            validate_button(errs, c, custom_id, &at);
        }
    }
}

/// A button's own rules (`discord-api.md` §1.4): label ≤ 80, `disabled` a
/// boolean; styles 1–4 need a `custom_id` and no `url`; 5 (link) needs a
/// `url` (≤ 512, http, https or discord) and no `custom_id`; 6 (premium)
/// needs a `sku_id` and none of `custom_id`, `url`, `label`.
fn validate_button<'a>(
    errs: &mut FieldErrors,
    c: &Value,
    custom_id: Option<&str>,
    at: &dyn Fn(&'static str) -> Vec<&'a str>,
) {
    max_len(errs, &at("label"), c.get("label"), 80, true);
    if c.get("disabled")
        .is_some_and(|d| !d.is_null() && !d.is_boolean())
    {
        errs.push(&at("disabled"), "BASE_TYPE_BAD_TYPE", "Must be a boolean.");
    }
    let has = |field: &str| c.get(field).is_some_and(|v| !v.is_null());
    match c.get("style").and_then(Value::as_u64) {
        Some(1..=4) => {
            if custom_id.is_none() {
                errs.push(
                    &at("custom_id"),
                    "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED",
                    "A custom id is required",
                );
            }
            if has("url") {
                errs.push(
                    &at("url"),
                    "BUTTON_COMPONENT_URL_NOT_ALLOWED",
                    "A url cannot be specified",
                );
            }
        }
        Some(5) => {
            if custom_id.is_some() {
                errs.push(
                    &at("custom_id"),
                    "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                    "A custom id cannot be specified",
                );
            }
            match c.get("url").and_then(Value::as_str) {
                None => errs.push(
                    &at("url"),
                    "BUTTON_COMPONENT_URL_REQUIRED",
                    "A url is required",
                ),
                Some(url) => {
                    max_len(errs, &at("url"), c.get("url"), 512, false);
                    let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
                    if !scheme
                        .as_deref()
                        .is_some_and(|s| matches!(s, "http" | "https" | "discord"))
                    {
                        errs.push(
                            &at("url"),
                            "URL_TYPE_INVALID_SCHEME",
                            "Scheme must be one of ('http', 'https', 'discord').",
                        );
                    }
                }
            }
        }
        Some(6) => {
            if !has("sku_id") {
                errs.push(
                    &at("sku_id"),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                );
            }
            for field in ["custom_id", "url", "label"] {
                if has(field) {
                    errs.push(
                        &at(field),
                        "BUTTON_COMPONENT_PREMIUM_FIELD_NOT_ALLOWED",
                        "This field cannot be specified on a premium button",
                    );
                }
            }
        }
        _ => errs.push(
            &at("style"),
            "BASE_TYPE_CHOICES",
            "Value must be one of {1, 2, 3, 4, 5, 6}.",
        ),
    }
}

/// Interaction type PING.
pub const PING: u64 = 1;
/// Interaction type MESSAGE_COMPONENT.
pub const MESSAGE_COMPONENT: u64 = 3;
/// Interaction type MODAL_SUBMIT.
pub const MODAL_SUBMIT: u64 = 5;

/// The callback types Discord takes in answer to an interaction of
/// `interaction_type` (`discord-api.md` §3.3): PONG only for a PING; 9 (MODAL)
/// not for a MODAL_SUBMIT or a PING; 6 and 7 only where there is a message to
/// update (a component, or a modal opened from one).
pub fn allowed_callbacks(interaction_type: u64, from_message: bool) -> &'static [u64] {
    match interaction_type {
        PING => &[1],
        MESSAGE_COMPONENT => &[4, 5, 6, 7, 9],
        MODAL_SUBMIT if from_message => &[4, 5, 6, 7],
        MODAL_SUBMIT => &[4, 5],
        _ => &[],
    }
}

/// Validates an interaction response (the body of
/// `POST /interactions/{id}/{token}/callback`, or an endpoint's inline
/// answer) to an interaction of `interaction_type`. An empty type 4 message
/// is reported separately (`is_empty_message` on its `data`).
pub fn validate_callback(body: &Value, interaction_type: u64, from_message: bool) -> FieldErrors {
    let mut errs = FieldErrors::default();
    let Some(obj) = body.as_object() else {
        errs.push(
            &[],
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        );
        return errs;
    };
    let kind = match obj.get("type") {
        None | Some(Value::Null) => {
            errs.push(&["type"], "BASE_TYPE_REQUIRED", "This field is required");
            return errs;
        }
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => {
            errs.push(&["type"], "NUMBER_TYPE_COERCE", "Value is not int.");
            return errs;
        }
    };
    if !kind.is_some_and(|k| [1, 4, 5, 6, 7, 8, 9, 10, 12].contains(&k)) {
        errs.push(
            &["type"],
            "BASE_TYPE_CHOICES",
            "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}.",
        );
        return errs;
    }
    let Some(kind) = kind.filter(|k| allowed_callbacks(interaction_type, from_message).contains(k))
    else {
        errs.push(
            &["type"],
            "INTERACTION_CALLBACK_TYPE_INVALID",
            "This interaction callback type is not allowed for this interaction type.",
        );
        return errs;
    };
    let data = obj.get("data").filter(|d| !d.is_null());
    let message_kind = match kind {
        4 => Some(Kind::InteractionMessage),
        5 => Some(Kind::Deferred),
        7 => Some(Kind::InteractionEdit),
        _ => None,
    };
    if let (Some(message_kind), Some(d)) = (message_kind, data) {
        errs.nest("data", validate(d, message_kind));
    }
    if kind == 9 {
        match data {
            None => errs.push(&["data"], "BASE_TYPE_REQUIRED", "This field is required"),
            Some(d) => validate_modal(&mut errs, d),
        }
    }
    errs
}

fn path_to(base: &[String], more: &[&str]) -> Vec<String> {
    let mut p = base.to_vec();
    p.extend(more.iter().map(|s| (*s).to_owned()));
    p
}

/// A string field of `min..=max` characters; `required` says whether it may be absent or null.
fn string_len(
    errs: &mut FieldErrors,
    path: &[String],
    v: Option<&Value>,
    (min, max): (usize, usize),
    required: bool,
) -> Option<usize> {
    match v {
        None | Some(Value::Null) => {
            if required {
                errs.push_at(path, "BASE_TYPE_REQUIRED", "This field is required");
            }
            None
        }
        Some(Value::String(s)) => {
            let n = chars(s);
            if n < min || n > max {
                let message = if min == 0 {
                    format!("Must be {max} or fewer in length.")
                } else {
                    format!("Must be between {min} and {max} in length.")
                };
                errs.push_at(path, "BASE_TYPE_BAD_LENGTH", message);
            }
            Some(n)
        }
        Some(_) => {
            errs.push_at(
                path,
                "STRING_TYPE_CONVERT",
                "Could not interpret value as string.",
            );
            None
        }
    }
}

/// An optional integer field within `min..=max`.
fn int_range(
    errs: &mut FieldErrors,
    path: &[String],
    v: Option<&Value>,
    (min, max): (u64, u64),
) -> Option<u64> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64().filter(|n| (min..=max).contains(n)) {
            Some(n) => Some(n),
            None => {
                errs.push_at(
                    path,
                    "NUMBER_TYPE_MAX",
                    format!("int value should be <= {max} and >= {min}."),
                );
                None
            }
        },
        Some(_) => {
            errs.push_at(path, "NUMBER_TYPE_COERCE", "Value is not int.");
            None
        }
    }
}

/// Component types a Label may wrap besides a text input (selects, file
/// upload, radio group, checkbox group, checkbox); checked for a `custom_id` only.
const LABEL_CHILDREN: [u64; 9] = [3, 5, 6, 7, 8, 19, 21, 22, 23];

/// A MODAL callback's `data` (`discord-api.md` §3.4): `custom_id` 1–100,
/// `title` 1–45, 1–5 components, each a Label (type 18: `label` 1–45,
/// `description` ≤ 100, one `component`), a Text Display (type 10), or the
/// legacy action row holding one text input; text inputs per
/// [`validate_text_input`]; `custom_id`s unique within the modal.
fn validate_modal(errs: &mut FieldErrors, data: &Value) {
    let base = vec!["data".to_owned()];
    let Some(d) = data.as_object() else {
        errs.push_at(
            &base,
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        );
        return;
    };
    string_len(
        errs,
        &path_to(&base, &["custom_id"]),
        d.get("custom_id"),
        (1, 100),
        true,
    );
    string_len(
        errs,
        &path_to(&base, &["title"]),
        d.get("title"),
        (1, 45),
        true,
    );
    let at = path_to(&base, &["components"]);
    let components = match d.get("components") {
        None | Some(Value::Null) => {
            return errs.push_at(&at, "BASE_TYPE_REQUIRED", "This field is required");
        }
        Some(Value::Array(a)) => a,
        Some(_) => return errs.push_at(&at, "LIST_TYPE_CONVERT", "Must be an array."),
    };
    if components.is_empty() || components.len() > 5 {
        errs.push_at(
            &at,
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 5 in length.",
        );
    }
    let mut ids = std::collections::HashSet::new();
    for (i, c) in components.iter().enumerate() {
        let here = path_to(&at, &[&i.to_string()]);
        match c.get("type").and_then(Value::as_u64) {
            Some(18) => {
                string_len(
                    errs,
                    &path_to(&here, &["label"]),
                    c.get("label"),
                    (1, 45),
                    true,
                );
                string_len(
                    errs,
                    &path_to(&here, &["description"]),
                    c.get("description"),
                    (1, 100),
                    false,
                );
                let inner = path_to(&here, &["component"]);
                match c.get("component").filter(|v| !v.is_null()) {
                    None => errs.push_at(&inner, "BASE_TYPE_REQUIRED", "This field is required"),
                    Some(child) => match child.get("type").and_then(Value::as_u64) {
                        Some(4) => validate_text_input(errs, &inner, child, &mut ids, false),
                        Some(t) if LABEL_CHILDREN.contains(&t) => {
                            let id_path = path_to(&inner, &["custom_id"]);
                            string_len(errs, &id_path, child.get("custom_id"), (1, 100), true);
                            unique_id(errs, &id_path, child, &mut ids);
                        }
                        _ => errs.push_at(
                            &path_to(&inner, &["type"]),
                            "COMPONENT_TYPE_INVALID",
                            "This component type cannot be used in a label.",
                        ),
                    },
                }
            }
            Some(1) => {
                let rows = path_to(&here, &["components"]);
                let children = c
                    .get("components")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if children.is_empty() {
                    errs.push_at(
                        &rows,
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 5 in length.",
                    );
                } else if children.len() > 1 {
                    // A text input is as wide as its row.
                    errs.push_at(
                        &rows,
                        "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                        "The specified component exceeds the maximum width",
                    );
                }
                for (j, child) in children.iter().enumerate() {
                    let p = path_to(&rows, &[&j.to_string()]);
                    if child.get("type").and_then(Value::as_u64) == Some(4) {
                        validate_text_input(errs, &p, child, &mut ids, true);
                    } else {
                        errs.push_at(
                            &path_to(&p, &["type"]),
                            "COMPONENT_TYPE_INVALID",
                            "Only text inputs may be used in a modal action row.",
                        );
                    }
                }
            }
            Some(10) => {
                string_len(
                    errs,
                    &path_to(&here, &["content"]),
                    c.get("content"),
                    (1, 4000),
                    true,
                );
            }
            _ => errs.push_at(
                &path_to(&here, &["type"]),
                "COMPONENT_TYPE_INVALID",
                "This component type cannot be used in a modal.",
            ),
        }
    }
}

fn unique_id(
    errs: &mut FieldErrors,
    path: &[String],
    c: &Value,
    ids: &mut std::collections::HashSet<String>,
) {
    if let Some(id) = c.get("custom_id").and_then(Value::as_str)
        && !ids.insert(id.to_owned())
    {
        errs.push_at(
            path,
            "COMPONENT_CUSTOM_ID_DUPLICATED",
            "Component custom id cannot be duplicated",
        );
    }
}

/// A Text Input (type 4): `custom_id` 1–100, `style` 1 (short) or 2
/// (paragraph), `min_length` 0–4000, `max_length` 1–4000 and not below
/// `min_length`, `required` a boolean, `value` ≤ 4000 (and within
/// `max_length`), `placeholder` ≤ 100; `label` (1–45) is required in the
/// legacy action-row shape, where no Label carries it.
fn validate_text_input(
    errs: &mut FieldErrors,
    path: &[String],
    c: &Value,
    ids: &mut std::collections::HashSet<String>,
    legacy: bool,
) {
    let id_path = path_to(path, &["custom_id"]);
    string_len(errs, &id_path, c.get("custom_id"), (1, 100), true);
    unique_id(errs, &id_path, c, ids);
    if !matches!(c.get("style").and_then(Value::as_u64), Some(1 | 2)) {
        errs.push_at(
            &path_to(path, &["style"]),
            "BASE_TYPE_CHOICES",
            "Value must be one of {1, 2}.",
        );
    }
    string_len(
        errs,
        &path_to(path, &["label"]),
        c.get("label"),
        (1, 45),
        legacy,
    );
    let min = int_range(
        errs,
        &path_to(path, &["min_length"]),
        c.get("min_length"),
        (0, 4000),
    );
    let max = int_range(
        errs,
        &path_to(path, &["max_length"]),
        c.get("max_length"),
        (1, 4000),
    );
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        errs.push_at(
            &path_to(path, &["min_length"]),
            "BASE_TYPE_BAD_LENGTH",
            "min_length must not exceed max_length.",
        );
    }
    if c.get("required")
        .is_some_and(|r| !r.is_null() && !r.is_boolean())
    {
        errs.push_at(
            &path_to(path, &["required"]),
            "BASE_TYPE_BAD_TYPE",
            "Must be a boolean.",
        );
    }
    let value_max = max.map_or(4000, |m| m as usize);
    string_len(
        errs,
        &path_to(path, &["value"]),
        c.get("value"),
        (0, value_max),
        false,
    );
    string_len(
        errs,
        &path_to(path, &["placeholder"]),
        c.get("placeholder"),
        (0, 100),
        false,
    );
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
    fn button_rules_beyond_the_spec() {
        let row = |b: Value| json!({"components": [{"type": 1, "components": [b]}]});
        let code = |b: Value, field: &str| {
            errors(row(b), Kind::Create)["components"]["0"]["components"]["0"][field]["_errors"][0]
                ["code"]
                .clone()
        };
        assert_eq!(
            code(
                json!({"type": 2, "style": 1, "label": "x", "custom_id": "a", "disabled": "yes"}),
                "disabled"
            ),
            "BASE_TYPE_BAD_TYPE"
        );
        assert_eq!(
            code(
                json!({"type": 2, "style": 1, "label": "x".repeat(81), "custom_id": "a"}),
                "label"
            ),
            "BASE_TYPE_MAX_LENGTH"
        );
        assert_eq!(
            code(json!({"type": 2, "style": 2, "label": "x"}), "custom_id"),
            "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED"
        );
        assert_eq!(
            code(
                json!({"type": 2, "style": 4, "custom_id": "a", "url": "https://e.com"}),
                "url"
            ),
            "BUTTON_COMPONENT_URL_NOT_ALLOWED"
        );
        assert_eq!(
            code(json!({"type": 2, "style": 5, "label": "x"}), "url"),
            "BUTTON_COMPONENT_URL_REQUIRED"
        );
        assert_eq!(
            code(
                json!({"type": 2, "style": 5, "label": "x", "url": "ftp://e.com"}),
                "url"
            ),
            "URL_TYPE_INVALID_SCHEME"
        );
        assert_eq!(
            code(
                json!({"type": 2, "style": 6, "label": "x", "sku_id": "1"}),
                "label"
            ),
            "BUTTON_COMPONENT_PREMIUM_FIELD_NOT_ALLOWED"
        );
        assert_eq!(
            code(json!({"type": 2, "label": "x", "custom_id": "a"}), "style"),
            "BASE_TYPE_CHOICES"
        );
        assert_eq!(
            code(
                json!({"type": 4, "custom_id": "a", "style": 1, "label": "x"}),
                "type"
            ),
            "COMPONENT_TYPE_INVALID"
        );
        assert_eq!(
            code(
                json!({"type": 2, "style": 1, "label": "x", "custom_id": 7}),
                "custom_id"
            ),
            "STRING_TYPE_CONVERT"
        );
        assert_eq!(
            code(
                json!({"type": 2, "style": 1, "label": "x", "custom_id": "x".repeat(101)}),
                "custom_id"
            ),
            "BASE_TYPE_BAD_LENGTH"
        );
        let ok = row(
            json!({"type": 2, "style": 5, "label": "Open", "url": "https://e.com/r/1", "disabled": false}),
        );
        assert!(validate(&ok, Kind::Create).is_empty());
        let ok = row(
            json!({"type": 2, "style": 1, "label": "Approve", "custom_id": "a", "disabled": true}),
        );
        assert!(validate(&ok, Kind::Edit).is_empty());
        // Unique within the whole message, across rows.
        let two_rows = json!({"components": [
            {"type": 1, "components": [{"type": 2, "style": 1, "label": "a", "custom_id": "same"}]},
            {"type": 1, "components": [{"type": 2, "style": 1, "label": "b", "custom_id": "same"}]},
        ]});
        assert_eq!(
            errors(two_rows, Kind::Create)["components"]["1"]["components"]["0"]["custom_id"]["_errors"]
                [0]["code"],
            "COMPONENT_CUSTOM_ID_DUPLICATED"
        );
    }

    #[test]
    fn interaction_message_flags() {
        let with =
            |flags: u64, kind| validate(&json!({"content": "a", "flags": flags}), kind).is_empty();
        assert!(with(EPHEMERAL, Kind::InteractionMessage));
        assert!(with(EPHEMERAL | SUPPRESS_EMBEDS, Kind::InteractionMessage));
        assert!(!with(LOADING, Kind::InteractionMessage));
        assert!(!with(EPHEMERAL, Kind::Create));
        assert!(!with(EPHEMERAL, Kind::InteractionEdit));
        assert!(with(SUPPRESS_EMBEDS, Kind::InteractionEdit));
        assert!(with(EPHEMERAL, Kind::Deferred));
        assert!(!with(SUPPRESS_EMBEDS, Kind::Deferred));
    }

    fn modal(components: Value) -> Value {
        json!({"type": 9, "data": {"custom_id": "m", "title": "Deny", "components": components}})
    }

    fn label(input: Value) -> Value {
        json!({"type": 18, "label": "Reason", "component": input})
    }

    fn input() -> Value {
        json!({"type": 4, "custom_id": "reason", "style": 2})
    }

    fn modal_errors(body: &Value) -> Value {
        validate_callback(body, MESSAGE_COMPONENT, true).to_json()
    }

    #[test]
    fn modal_rules() {
        assert!(
            validate_callback(&modal(json!([label(input())])), MESSAGE_COMPONENT, true).is_empty()
        );
        let at = |body: Value, path: &[&str]| {
            let mut v = modal_errors(&body);
            for p in path {
                v = v[*p].clone();
            }
            v["_errors"][0]["code"].clone()
        };
        let mut m = modal(json!([label(input())]));
        m["data"]["title"] = json!("t".repeat(46));
        assert_eq!(at(m, &["data", "title"]), "BASE_TYPE_BAD_LENGTH");
        let mut m = modal(json!([label(input())]));
        m["data"]["custom_id"] = json!("");
        assert_eq!(at(m, &["data", "custom_id"]), "BASE_TYPE_BAD_LENGTH");
        assert_eq!(
            at(modal(json!([])), &["data", "components"]),
            "BASE_TYPE_BAD_LENGTH"
        );
        let six: Vec<Value> = (0..6)
            .map(|i| label(json!({"type": 4, "custom_id": format!("r{i}"), "style": 1})))
            .collect();
        assert_eq!(
            at(modal(json!(six)), &["data", "components"]),
            "BASE_TYPE_BAD_LENGTH"
        );
        let mut l = label(input());
        l["label"] = json!("l".repeat(46));
        assert_eq!(
            at(modal(json!([l])), &["data", "components", "0", "label"]),
            "BASE_TYPE_BAD_LENGTH"
        );
        let mut l = label(input());
        l["description"] = json!("d".repeat(101));
        assert_eq!(
            at(
                modal(json!([l])),
                &["data", "components", "0", "description"]
            ),
            "BASE_TYPE_BAD_LENGTH"
        );
        let child = |field: &str, v: Value| {
            let mut i = input();
            i[field] = v;
            modal(json!([label(i)]))
        };
        let inner = |field: &'static str| ["data", "components", "0", "component", field];
        assert_eq!(
            at(child("style", json!(3)), &inner("style")),
            "BASE_TYPE_CHOICES"
        );
        assert_eq!(
            at(
                child("placeholder", json!("p".repeat(101))),
                &inner("placeholder")
            ),
            "BASE_TYPE_BAD_LENGTH"
        );
        assert_eq!(
            at(child("value", json!("v".repeat(4001))), &inner("value")),
            "BASE_TYPE_BAD_LENGTH"
        );
        assert_eq!(
            at(child("max_length", json!(4001)), &inner("max_length")),
            "NUMBER_TYPE_MAX"
        );
        assert_eq!(
            at(child("max_length", json!(0)), &inner("max_length")),
            "NUMBER_TYPE_MAX"
        );
        assert_eq!(
            at(child("required", json!("yes")), &inner("required")),
            "BASE_TYPE_BAD_TYPE"
        );
        assert_eq!(
            at(
                child("custom_id", json!("c".repeat(101))),
                &inner("custom_id")
            ),
            "BASE_TYPE_BAD_LENGTH"
        );
        let mut i = input();
        i["min_length"] = json!(10);
        i["max_length"] = json!(5);
        assert_eq!(
            at(modal(json!([label(i)])), &inner("min_length")),
            "BASE_TYPE_BAD_LENGTH"
        );
        let dup = modal(json!([label(input()), label(input())]));
        assert_eq!(
            at(dup, &["data", "components", "1", "component", "custom_id"]),
            "COMPONENT_CUSTOM_ID_DUPLICATED"
        );
        // A button is no modal component.
        let button = modal(json!([label(
            json!({"type": 2, "style": 1, "custom_id": "b"})
        )]));
        assert_eq!(at(button, &inner("type")), "COMPONENT_TYPE_INVALID");
        assert_eq!(at(json!({"type": 9}), &["data"]), "BASE_TYPE_REQUIRED");
    }

    #[test]
    fn legacy_modal_rows() {
        let row = |inputs: Value| modal(json!([{"type": 1, "components": inputs}]));
        let legacy = json!({"type": 4, "custom_id": "reason", "style": 1, "label": "Reason"});
        assert!(validate_callback(&row(json!([legacy])), MESSAGE_COMPONENT, true).is_empty());
        // Without a Label, the text input carries its label.
        let e = modal_errors(&row(json!([input()])));
        assert_eq!(
            e["data"]["components"]["0"]["components"]["0"]["label"]["_errors"][0]["code"],
            "BASE_TYPE_REQUIRED"
        );
        let two = json!([legacy, {"type": 4, "custom_id": "b", "style": 1, "label": "B"}]);
        let e = modal_errors(&row(two));
        assert_eq!(
            e["data"]["components"]["0"]["components"]["_errors"][0]["code"],
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED"
        );
    }

    #[test]
    fn callback_types_per_interaction() {
        let code = |body: Value, interaction: u64, from_message: bool| {
            validate_callback(&body, interaction, from_message).to_json()["type"]["_errors"][0]
                ["code"]
                .clone()
        };
        let m = modal(json!([label(input())]));
        // MODAL is not allowed for MODAL_SUBMIT or PING.
        assert_eq!(
            code(m.clone(), MODAL_SUBMIT, true),
            "INTERACTION_CALLBACK_TYPE_INVALID"
        );
        assert_eq!(code(m, PING, false), "INTERACTION_CALLBACK_TYPE_INVALID");
        assert_eq!(
            code(json!({"type": 1}), MESSAGE_COMPONENT, true),
            "INTERACTION_CALLBACK_TYPE_INVALID"
        );
        assert_eq!(
            code(json!({"type": 4}), PING, false),
            "INTERACTION_CALLBACK_TYPE_INVALID"
        );
        // Updating needs a message: a modal opened from a component has one.
        assert_eq!(
            code(json!({"type": 6}), MODAL_SUBMIT, false),
            "INTERACTION_CALLBACK_TYPE_INVALID"
        );
        assert!(validate_callback(&json!({"type": 6}), MODAL_SUBMIT, true).is_empty());
        assert!(validate_callback(&json!({"type": 1}), PING, false).is_empty());
        assert_eq!(
            code(json!({"type": 3}), MESSAGE_COMPONENT, true),
            "BASE_TYPE_CHOICES"
        );
        assert_eq!(
            code(json!({}), MESSAGE_COMPONENT, true),
            "BASE_TYPE_REQUIRED"
        );
        // Type 5 takes only EPHEMERAL; type 4 data is a message body.
        let e = validate_callback(
            &json!({"type": 5, "data": {"flags": 4}}),
            MESSAGE_COMPONENT,
            true,
        );
        assert_eq!(
            e.to_json()["data"]["flags"]["_errors"][0]["code"],
            "BASE_TYPE_CHOICES"
        );
        assert!(
            validate_callback(
                &json!({"type": 5, "data": {"flags": 64}}),
                MESSAGE_COMPONENT,
                true
            )
            .is_empty()
        );
        let e = validate_callback(
            &json!({"type": 4, "data": {"embeds": [{"title": "t".repeat(257)}]}}),
            MESSAGE_COMPONENT,
            true,
        );
        assert_eq!(
            e.to_json()["data"]["embeds"]["0"]["title"]["_errors"][0]["code"],
            "BASE_TYPE_MAX_LENGTH"
        );
    }

    #[test]
    fn empty_message() {
        assert!(is_empty_message(&json!({})));
        assert!(is_empty_message(&json!({"content": "", "nonce": "n"})));
        assert!(!is_empty_message(&json!({"embeds": [{"title": "t"}]})));
    }
}

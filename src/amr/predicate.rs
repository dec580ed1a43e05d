//! The predicate language of access monitoring rule conditions, as Teleport
//! documents it: Go-like expressions over the request and the requesting user.
//!
//! ```text
//! access_request.spec.roles.contains("dev")
//! contains_all(set("access"), access_request.spec.roles)
//! contains_any(user.traits["team"], set("dev"))
//! !is_empty(access_request.spec.suggested_reviewers)
//! access_request.spec.creation_time.after(time.RFC3339("2026-01-01T00:00:00Z"))
//! ```
//!
//! Grammar: `||`, `&&`, `==`/`!=`, unary `!`, calls, method calls, map
//! indexing (`m["k"]` or `m.k`), parentheses, string (`"..."`, `` `...` ``),
//! integer and boolean literals. Values are strings, booleans, integers,
//! sets of strings, dictionaries of sets, and times. Following Teleport:
//! `contains_all(a, b)` is false when `b` is empty; a missing map key is an
//! empty set; `between` is exclusive at both ends. Unknown identifiers,
//! functions and methods are parse errors; type mismatches are evaluation
//! errors. Errors carry the byte position in the condition.
//!
//! Parsing is bounded (length and nesting), so no input can exhaust the stack.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Longest condition accepted.
pub const MAX_LEN: usize = 16 * 1024;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// A parse or evaluation error, with the byte offset it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredicateError {
    /// Byte offset in the condition.
    pub pos: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PredicateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.pos, self.message)
    }
}

impl std::error::Error for PredicateError {}

fn err<T>(pos: usize, message: impl Into<String>) -> Result<T, PredicateError> {
    Err(PredicateError {
        pos,
        message: message.into(),
    })
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `access_request.spec.roles`
    pub roles: Vec<String>,
    /// `access_request.spec.suggested_reviewers`
    pub suggested_reviewers: Vec<String>,
    /// `access_request.spec.system_annotations`
    pub system_annotations: BTreeMap<String, Vec<String>>,
    /// `access_request.spec.user`
    pub user: String,
    /// `access_request.spec.request_reason`
    pub request_reason: String,
    /// `access_request.spec.creation_time`, unix seconds
    pub creation_time: i64,
    /// `access_request.spec.expiry`, unix seconds
    pub expiry: i64,
    /// `access_request.spec.resource_labels_intersection`
    pub resource_labels_intersection: BTreeMap<String, Vec<String>>,
    /// `access_request.spec.requested_resources.length`
    pub requested_resources: i64,
    /// `user.traits`
    pub user_traits: BTreeMap<String, Vec<String>>,
    /// `plugin.spec.name`
    pub plugin_name: String,
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `true` / `false`.
    Bool(bool),
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A set of strings.
    Set(BTreeSet<String>),
    /// A map of string to set.
    Dict(BTreeMap<String, BTreeSet<String>>),
    /// A time, unix seconds.
    Time(i64),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Self::Bool(_) => "bool",
            Self::Str(_) => "string",
            Self::Int(_) => "integer",
            Self::Set(_) => "set",
            Self::Dict(_) => "map",
            Self::Time(_) => "time",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Roles,
    SuggestedReviewers,
    SystemAnnotations,
    User,
    RequestReason,
    CreationTime,
    Expiry,
    ResourceLabels,
    RequestedResourcesLength,
    UserTraits,
    PluginName,
}

const VARS: &[(&str, Var)] = &[
    ("access_request.spec.roles", Var::Roles),
    (
        "access_request.spec.suggested_reviewers",
        Var::SuggestedReviewers,
    ),
    (
        "access_request.spec.system_annotations",
        Var::SystemAnnotations,
    ),
    ("access_request.spec.user", Var::User),
    ("access_request.spec.request_reason", Var::RequestReason),
    ("access_request.spec.creation_time", Var::CreationTime),
    ("access_request.spec.expiry", Var::Expiry),
    (
        "access_request.spec.resource_labels_intersection",
        Var::ResourceLabels,
    ),
    (
        "access_request.spec.requested_resources.length",
        Var::RequestedResourcesLength,
    ),
    ("user.traits", Var::UserTraits),
    ("plugin.spec.name", Var::PluginName),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Set,
    Union,
    ContainsAny,
    ContainsAll,
    IsEmpty,
    Before,
    After,
    Between,
    Rfc3339,
    Upper,
    Lower,
    ReplaceAll,
    Split,
    EmailLocal,
    IfElse,
    Contains,
    Add,
    Remove,
}

const FUNCTIONS: &[(&str, Func)] = &[
    ("set", Func::Set),
    ("union", Func::Union),
    ("contains_any", Func::ContainsAny),
    ("contains_all", Func::ContainsAll),
    ("is_empty", Func::IsEmpty),
    ("before", Func::Before),
    ("after", Func::After),
    ("between", Func::Between),
    ("time.RFC3339", Func::Rfc3339),
    ("strings.upper", Func::Upper),
    ("strings.lower", Func::Lower),
    ("strings.replaceall", Func::ReplaceAll),
    ("strings.split", Func::Split),
    ("email.local", Func::EmailLocal),
    ("ifelse", Func::IfElse),
];

/// Methods take their receiver as the first argument.
const METHODS: &[(&str, Func)] = &[
    ("contains", Func::Contains),
    ("add", Func::Add),
    ("remove", Func::Remove),
    ("contains_any", Func::ContainsAny),
    ("contains_all", Func::ContainsAll),
    ("isempty", Func::IsEmpty),
    ("before", Func::Before),
    ("after", Func::After),
    ("between", Func::Between),
];

/// A parsed condition, ready to evaluate many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    root: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Lit(Value),
    Var(Var),
    Index(Box<Expr>, Box<Expr>, usize),
    Call(Func, Vec<Expr>, usize),
    Not(Box<Expr>, usize),
    And(Box<Expr>, Box<Expr>, usize),
    Or(Box<Expr>, Box<Expr>, usize),
    Eq(Box<Expr>, Box<Expr>, bool, usize),
}

// ---------- lexer ----------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Not,
    And,
    Or,
    EqEq,
    NotEq,
    End,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, PredicateError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => out.push((Tok::LParen, start)),
            b')' => out.push((Tok::RParen, start)),
            b'[' => out.push((Tok::LBracket, start)),
            b']' => out.push((Tok::RBracket, start)),
            b',' => out.push((Tok::Comma, start)),
            b'.' => out.push((Tok::Dot, start)),
            b'!' if b.get(i + 1) == Some(&b'=') => {
                out.push((Tok::NotEq, start));
                i += 1;
            }
            b'!' => out.push((Tok::Not, start)),
            b'=' if b.get(i + 1) == Some(&b'=') => {
                out.push((Tok::EqEq, start));
                i += 1;
            }
            b'&' if b.get(i + 1) == Some(&b'&') => {
                out.push((Tok::And, start));
                i += 1;
            }
            b'|' if b.get(i + 1) == Some(&b'|') => {
                out.push((Tok::Or, start));
                i += 1;
            }
            b'"' => {
                let (s, end) = lex_string(src, i)?;
                out.push((Tok::Str(s), start));
                i = end;
                continue;
            }
            b'`' => {
                let rest = &src[i + 1..];
                let Some(close) = rest.find('`') else {
                    return err(start, "unterminated raw string");
                };
                out.push((Tok::Str(rest[..close].to_owned()), start));
                i += close + 2;
                continue;
            }
            b'0'..=b'9' => {
                let mut j = i;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let n = src[i..j].parse().map_err(|_| PredicateError {
                    pos: start,
                    message: "integer out of range".into(),
                })?;
                out.push((Tok::Int(n), start));
                i = j;
                continue;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let mut j = i;
                while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
                    j += 1;
                }
                out.push((Tok::Ident(src[i..j].to_owned()), start));
                i = j;
                continue;
            }
            b'<' | b'>' => {
                return err(
                    start,
                    "comparison operators are not supported; use before(), after() or between() for times",
                );
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return err(start, format!("unexpected character {ch:?}"));
            }
        }
        i += 1;
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

fn lex_string(src: &str, start: usize) -> Result<(String, usize), PredicateError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        let pos = start + 1 + off;
        match c {
            '"' => return Ok((out, pos + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, 'u')) => {
                    let hex: String = (0..4)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) if hex.len() == 4 => out.push(ch),
                        _ => return err(pos, "invalid \\u escape"),
                    }
                }
                _ => return err(pos, "invalid escape in string"),
            },
            '\n' => return err(pos, "newline in string"),
            c => out.push(c),
        }
    }
    err(start, "unterminated string")
}

// ---------- parser ----------

#[derive(Debug)]
enum Node {
    Lit(Value),
    Path(Vec<String>, usize),
    Select(Box<Node>, String, usize),
    Call(Box<Node>, Vec<Node>, usize),
    Index(Box<Node>, Box<Node>, usize),
    Not(Box<Node>, usize),
    And(Box<Node>, Box<Node>, usize),
    Or(Box<Node>, Box<Node>, usize),
    Eq(Box<Node>, Box<Node>, bool, usize),
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }
    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }
    fn bump(&mut self) -> (Tok, usize) {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        self.i += 1;
        t
    }
    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), PredicateError> {
        if self.peek() == t {
            self.bump();
            Ok(())
        } else {
            err(self.pos(), format!("expected {what}"))
        }
    }
    fn enter(&mut self) -> Result<(), PredicateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.pos(), "expression nested too deeply");
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, PredicateError> {
        self.enter()?;
        let mut left = self.and()?;
        while *self.peek() == Tok::Or {
            let (_, pos) = self.bump();
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right), pos);
        }
        self.depth -= 1;
        Ok(left)
    }
    fn and(&mut self) -> Result<Node, PredicateError> {
        let mut left = self.eq()?;
        while *self.peek() == Tok::And {
            let (_, pos) = self.bump();
            let right = self.eq()?;
            left = Node::And(Box::new(left), Box::new(right), pos);
        }
        Ok(left)
    }
    fn eq(&mut self) -> Result<Node, PredicateError> {
        let mut left = self.unary()?;
        loop {
            let negate = match self.peek() {
                Tok::EqEq => false,
                Tok::NotEq => true,
                _ => break,
            };
            let (_, pos) = self.bump();
            let right = self.unary()?;
            left = Node::Eq(Box::new(left), Box::new(right), negate, pos);
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Node, PredicateError> {
        if *self.peek() == Tok::Not {
            let (_, pos) = self.bump();
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner), pos));
        }
        self.postfix()
    }
    fn postfix(&mut self) -> Result<Node, PredicateError> {
        let mut node = self.primary()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let pos = self.pos();
                    let name = match self.bump().0 {
                        Tok::Ident(n) => n,
                        _ => return err(pos, "expected a name after '.'"),
                    };
                    node = match node {
                        Node::Path(mut parts, p) => {
                            parts.push(name);
                            Node::Path(parts, p)
                        }
                        other => Node::Select(Box::new(other), name, pos),
                    };
                }
                Tok::LParen => {
                    let (_, pos) = self.bump();
                    self.enter()?;
                    let mut args = Vec::new();
                    if *self.peek() != Tok::RParen {
                        loop {
                            args.push(self.or()?);
                            if *self.peek() == Tok::Comma {
                                self.bump();
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect(&Tok::RParen, "')' to close the argument list")?;
                    self.depth -= 1;
                    node = Node::Call(Box::new(node), args, pos);
                }
                Tok::LBracket => {
                    let (_, pos) = self.bump();
                    self.enter()?;
                    let key = self.or()?;
                    self.expect(&Tok::RBracket, "']'")?;
                    self.depth -= 1;
                    node = Node::Index(Box::new(node), Box::new(key), pos);
                }
                _ => return Ok(node),
            }
        }
    }
    fn primary(&mut self) -> Result<Node, PredicateError> {
        let pos = self.pos();
        match self.bump().0 {
            Tok::Str(s) => Ok(Node::Lit(Value::Str(s))),
            Tok::Int(n) => Ok(Node::Lit(Value::Int(n))),
            Tok::Ident(name) => Ok(Node::Path(vec![name], pos)),
            Tok::LParen => {
                self.enter()?;
                let inner = self.or()?;
                self.expect(&Tok::RParen, "')'")?;
                self.depth -= 1;
                Ok(inner)
            }
            Tok::End => err(pos, "unexpected end of expression"),
            other => err(pos, format!("unexpected {}", describe(&other))),
        }
    }
}

fn describe(t: &Tok) -> &'static str {
    match t {
        Tok::Ident(_) => "name",
        Tok::Str(_) => "string",
        Tok::Int(_) => "number",
        Tok::LParen => "'('",
        Tok::RParen => "')'",
        Tok::LBracket => "'['",
        Tok::RBracket => "']'",
        Tok::Comma => "','",
        Tok::Dot => "'.'",
        Tok::Not => "'!'",
        Tok::And => "'&&'",
        Tok::Or => "'||'",
        Tok::EqEq => "'=='",
        Tok::NotEq => "'!='",
        Tok::End => "end",
    }
}

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Resolves names: the longest known variable prefix of a dotted path, a
/// remaining single part as a map key, functions by dotted name, methods.
fn resolve(node: Node) -> Result<Expr, PredicateError> {
    Ok(match node {
        Node::Lit(v) => Expr::Lit(v),
        Node::Path(parts, pos) => resolve_path(&parts, pos)?,
        Node::Select(base, name, pos) => Expr::Index(
            Box::new(resolve(*base)?),
            Box::new(Expr::Lit(Value::Str(name))),
            pos,
        ),
        Node::Index(base, key, pos) => {
            Expr::Index(Box::new(resolve(*base)?), Box::new(resolve(*key)?), pos)
        }
        Node::Not(inner, pos) => Expr::Not(Box::new(resolve(*inner)?), pos),
        Node::And(a, b, pos) => Expr::And(Box::new(resolve(*a)?), Box::new(resolve(*b)?), pos),
        Node::Or(a, b, pos) => Expr::Or(Box::new(resolve(*a)?), Box::new(resolve(*b)?), pos),
        Node::Eq(a, b, neg, pos) => {
            Expr::Eq(Box::new(resolve(*a)?), Box::new(resolve(*b)?), neg, pos)
        }
        Node::Call(callee, args, pos) => {
            let args = args
                .into_iter()
                .map(resolve)
                .collect::<Result<Vec<_>, _>>()?;
            match *callee {
                Node::Path(parts, ppos) => {
                    let joined = parts.join(".");
                    if let Some(f) = lookup(FUNCTIONS, &joined) {
                        Expr::Call(f, args, pos)
                    } else if parts.len() > 1 {
                        let (method, recv) = parts
                            .split_last()
                            .map(|(m, r)| (m.clone(), r.to_vec()))
                            .unwrap_or_default();
                        let Some(f) = lookup(METHODS, &method) else {
                            return err(ppos, format!("unknown function or method \"{joined}\""));
                        };
                        let mut all = vec![resolve_path(&recv, ppos)?];
                        all.extend(args);
                        Expr::Call(f, all, pos)
                    } else {
                        return err(ppos, format!("unknown function \"{joined}\""));
                    }
                }
                Node::Select(recv, method, mpos) => {
                    let Some(f) = lookup(METHODS, &method) else {
                        return err(mpos, format!("unknown method \"{method}\""));
                    };
                    let mut all = vec![resolve(*recv)?];
                    all.extend(args);
                    Expr::Call(f, all, pos)
                }
                _ => return err(pos, "only functions and methods can be called"),
            }
        }
    })
}

fn resolve_path(parts: &[String], pos: usize) -> Result<Expr, PredicateError> {
    let joined = parts.join(".");
    match joined.as_str() {
        "true" => return Ok(Expr::Lit(Value::Bool(true))),
        "false" => return Ok(Expr::Lit(Value::Bool(false))),
        _ => {}
    }
    if let Some(v) = lookup(VARS, &joined) {
        return Ok(Expr::Var(v));
    }
    // `map.key` for a map variable.
    if parts.len() > 1 {
        let base = parts[..parts.len() - 1].join(".");
        if let Some(v) = lookup(VARS, &base) {
            return Ok(Expr::Index(
                Box::new(Expr::Var(v)),
                Box::new(Expr::Lit(Value::Str(parts[parts.len() - 1].clone()))),
                pos,
            ));
        }
    }
    err(pos, format!("unknown identifier \"{joined}\""))
}

impl Predicate {
    /// Parses a condition.
    pub fn parse(src: &str) -> Result<Self, PredicateError> {
        if src.trim().is_empty() {
            return err(0, "empty expression");
        }
        if src.len() > MAX_LEN {
            return err(MAX_LEN, format!("expression longer than {MAX_LEN} bytes"));
        }
        let toks = lex(src)?;
        let mut p = Parser {
            toks,
            i: 0,
            depth: 0,
        };
        let node = p.or()?;
        if *p.peek() != Tok::End {
            return err(
                p.pos(),
                format!("unexpected {} after the expression", describe(p.peek())),
            );
        }
        Ok(Self {
            root: resolve(node)?,
        })
    }

    /// Evaluates to a boolean; a non-boolean result is an error.
    pub fn matches(&self, env: &Env) -> Result<bool, PredicateError> {
        match eval(&self.root, env)? {
            Value::Bool(b) => Ok(b),
            other => err(
                0,
                format!("the condition evaluates to a {}, not a bool", other.kind()),
            ),
        }
    }

    /// Evaluates to any value.
    pub fn evaluate(&self, env: &Env) -> Result<Value, PredicateError> {
        eval(&self.root, env)
    }
}

fn set_of(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn dict_of(m: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, BTreeSet<String>> {
    m.iter().map(|(k, v)| (k.clone(), set_of(v))).collect()
}

fn var(v: Var, env: &Env) -> Value {
    match v {
        Var::Roles => Value::Set(set_of(&env.roles)),
        Var::SuggestedReviewers => Value::Set(set_of(&env.suggested_reviewers)),
        Var::SystemAnnotations => Value::Dict(dict_of(&env.system_annotations)),
        Var::User => Value::Str(env.user.clone()),
        Var::RequestReason => Value::Str(env.request_reason.clone()),
        Var::CreationTime => Value::Time(env.creation_time),
        Var::Expiry => Value::Time(env.expiry),
        Var::ResourceLabels => Value::Dict(dict_of(&env.resource_labels_intersection)),
        Var::RequestedResourcesLength => Value::Int(env.requested_resources),
        Var::UserTraits => Value::Dict(dict_of(&env.user_traits)),
        Var::PluginName => Value::Str(env.plugin_name.clone()),
    }
}

fn want_set(v: Value, pos: usize, what: &str) -> Result<BTreeSet<String>, PredicateError> {
    match v {
        Value::Set(s) => Ok(s),
        other => err(pos, format!("{what} expects a set, got a {}", other.kind())),
    }
}

fn want_str(v: Value, pos: usize, what: &str) -> Result<String, PredicateError> {
    match v {
        Value::Str(s) => Ok(s),
        other => err(
            pos,
            format!("{what} expects a string, got a {}", other.kind()),
        ),
    }
}

fn want_time(v: Value, pos: usize, what: &str) -> Result<i64, PredicateError> {
    match v {
        Value::Time(t) => Ok(t),
        other => err(
            pos,
            format!("{what} expects a time, got a {}", other.kind()),
        ),
    }
}

fn want_bool(v: Value, pos: usize, what: &str) -> Result<bool, PredicateError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => err(
            pos,
            format!("{what} expects a bool, got a {}", other.kind()),
        ),
    }
}

fn arity(args: &[Expr], n: usize, pos: usize, name: &str) -> Result<(), PredicateError> {
    if args.len() == n {
        Ok(())
    } else {
        err(
            pos,
            format!("{name} takes {n} argument(s), got {}", args.len()),
        )
    }
}

fn map_strings(
    v: Value,
    pos: usize,
    what: &str,
    f: impl Fn(&str) -> String,
) -> Result<Value, PredicateError> {
    match v {
        Value::Str(s) => Ok(Value::Str(f(&s))),
        Value::Set(s) => Ok(Value::Set(s.iter().map(|x| f(x)).collect())),
        other => err(
            pos,
            format!("{what} expects a string or set, got a {}", other.kind()),
        ),
    }
}

fn eval(e: &Expr, env: &Env) -> Result<Value, PredicateError> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Var(v) => var(*v, env),
        Expr::Not(inner, pos) => Value::Bool(!want_bool(eval(inner, env)?, *pos, "'!'")?),
        Expr::And(a, b, pos) => Value::Bool(
            want_bool(eval(a, env)?, *pos, "'&&'")? && want_bool(eval(b, env)?, *pos, "'&&'")?,
        ),
        Expr::Or(a, b, pos) => Value::Bool(
            want_bool(eval(a, env)?, *pos, "'||'")? || want_bool(eval(b, env)?, *pos, "'||'")?,
        ),
        Expr::Eq(a, b, negate, pos) => {
            let (x, y) = (eval(a, env)?, eval(b, env)?);
            if std::mem::discriminant(&x) != std::mem::discriminant(&y) {
                return err(
                    *pos,
                    format!("cannot compare a {} with a {}", x.kind(), y.kind()),
                );
            }
            Value::Bool((x == y) != *negate)
        }
        Expr::Index(base, key, pos) => {
            let key = want_str(eval(key, env)?, *pos, "a map index")?;
            match eval(base, env)? {
                Value::Dict(d) => Value::Set(d.get(&key).cloned().unwrap_or_default()),
                other => return err(*pos, format!("cannot index a {}", other.kind())),
            }
        }
        Expr::Call(f, args, pos) => call(*f, args, *pos, env)?,
    })
}

fn call(f: Func, args: &[Expr], pos: usize, env: &Env) -> Result<Value, PredicateError> {
    let ev = |i: usize| eval(&args[i], env);
    Ok(match f {
        Func::Set => {
            let mut s = BTreeSet::new();
            for i in 0..args.len() {
                s.insert(want_str(ev(i)?, pos, "set()")?);
            }
            Value::Set(s)
        }
        Func::Union => {
            let mut s = BTreeSet::new();
            for i in 0..args.len() {
                s.extend(want_set(ev(i)?, pos, "union()")?);
            }
            Value::Set(s)
        }
        Func::ContainsAny => {
            arity(args, 2, pos, "contains_any")?;
            let (a, b) = (
                want_set(ev(0)?, pos, "contains_any")?,
                want_set(ev(1)?, pos, "contains_any")?,
            );
            Value::Bool(b.iter().any(|x| a.contains(x)))
        }
        Func::ContainsAll => {
            arity(args, 2, pos, "contains_all")?;
            let (a, b) = (
                want_set(ev(0)?, pos, "contains_all")?,
                want_set(ev(1)?, pos, "contains_all")?,
            );
            Value::Bool(!b.is_empty() && b.iter().all(|x| a.contains(x)))
        }
        Func::IsEmpty => {
            arity(args, 1, pos, "is_empty")?;
            Value::Bool(want_set(ev(0)?, pos, "is_empty")?.is_empty())
        }
        Func::Contains => {
            arity(args, 2, pos, "contains")?;
            let s = want_set(ev(0)?, pos, "contains")?;
            Value::Bool(s.contains(&want_str(ev(1)?, pos, "contains")?))
        }
        Func::Add | Func::Remove => {
            if args.is_empty() {
                return err(pos, "add/remove needs a receiver");
            }
            let mut s = want_set(ev(0)?, pos, "add/remove")?;
            for i in 1..args.len() {
                let item = want_str(ev(i)?, pos, "add/remove")?;
                if f == Func::Add {
                    s.insert(item);
                } else {
                    s.remove(&item);
                }
            }
            Value::Set(s)
        }
        Func::Before | Func::After => {
            arity(args, 2, pos, "before/after")?;
            let (t, o) = (
                want_time(ev(0)?, pos, "before/after")?,
                want_time(ev(1)?, pos, "before/after")?,
            );
            Value::Bool(if f == Func::Before { t < o } else { t > o })
        }
        Func::Between => {
            arity(args, 3, pos, "between")?;
            let t = want_time(ev(0)?, pos, "between")?;
            let (mut a, mut b) = (
                want_time(ev(1)?, pos, "between")?,
                want_time(ev(2)?, pos, "between")?,
            );
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            Value::Bool(t > a && t < b)
        }
        Func::Rfc3339 => {
            arity(args, 1, pos, "time.RFC3339")?;
            let s = want_str(ev(0)?, pos, "time.RFC3339")?;
            match parse_rfc3339(&s) {
                Some(t) => Value::Time(t),
                None => {
                    return err(
                        pos,
                        format!("\"{s}\" is not an RFC 3339 time (e.g. \"2026-01-02T15:04:05Z\")"),
                    );
                }
            }
        }
        Func::Upper => {
            arity(args, 1, pos, "strings.upper")?;
            map_strings(ev(0)?, pos, "strings.upper", str::to_uppercase)?
        }
        Func::Lower => {
            arity(args, 1, pos, "strings.lower")?;
            map_strings(ev(0)?, pos, "strings.lower", str::to_lowercase)?
        }
        Func::ReplaceAll => {
            arity(args, 3, pos, "strings.replaceall")?;
            let (from, to) = (
                want_str(ev(1)?, pos, "strings.replaceall")?,
                want_str(ev(2)?, pos, "strings.replaceall")?,
            );
            map_strings(ev(0)?, pos, "strings.replaceall", |s| s.replace(&from, &to))?
        }
        Func::Split => {
            arity(args, 2, pos, "strings.split")?;
            let s = want_set(ev(0)?, pos, "strings.split")?;
            let sep = want_str(ev(1)?, pos, "strings.split")?;
            if sep.is_empty() {
                return err(pos, "strings.split needs a non-empty separator");
            }
            Value::Set(
                s.iter()
                    .flat_map(|x| x.split(sep.as_str()).map(str::to_owned).collect::<Vec<_>>())
                    .collect(),
            )
        }
        Func::EmailLocal => {
            arity(args, 1, pos, "email.local")?;
            let s = want_set(ev(0)?, pos, "email.local")?;
            let mut out = BTreeSet::new();
            for e in s {
                match e.split_once('@') {
                    Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
                        out.insert(local.to_owned())
                    }
                    _ => return err(pos, format!("\"{e}\" is not an e-mail address")),
                };
            }
            Value::Set(out)
        }
        Func::IfElse => {
            arity(args, 3, pos, "ifelse")?;
            if want_bool(ev(0)?, pos, "ifelse")? {
                ev(1)?
            } else {
                ev(2)?
            }
        }
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → unix seconds. Like Go's
/// `time.RFC3339` layout, the date and the time are separated by `T` only.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    if s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests;

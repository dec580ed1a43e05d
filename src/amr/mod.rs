//! Access monitoring rules: Teleport resources that route access-request
//! notifications to recipients. This module owns the condition language
//! ([`predicate`]) and the in-memory rule set the reconciler asks.
//!
//! A rule applies when its subjects include `access_request`, its
//! notification is for our plugin (`discord`, or no name and a condition
//! that checks `plugin.spec.name`), and its condition is true for the
//! request. The recipients of every applying rule, together, replace
//! `role_to_recipients` (upstream's semantics). A rule whose condition does
//! not parse is skipped with a warning naming the rule and the position.

pub mod predicate;

use std::collections::BTreeMap;

use predicate::{Env, Predicate, PredicateError};

/// Our plugin's name in rules.
pub const PLUGIN_NAME: &str = "discord";
/// The subject rules must include.
pub const SUBJECT: &str = "access_request";

/// An access monitoring rule, as the Teleport module delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// `metadata.name`.
    pub name: String,
    /// `spec.subjects`.
    pub subjects: Vec<String>,
    /// `spec.condition`.
    pub condition: String,
    /// `spec.notification.name`.
    pub notification_name: String,
    /// `spec.notification.recipients`.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone)]
struct Compiled {
    rule: Rule,
    predicate: Result<Predicate, PredicateError>,
}

/// What happened to a rule when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// It will be evaluated for new requests.
    Active,
    /// Not for us (other subject or plugin); kept out of the set.
    Ignored,
    /// Its condition does not parse; skipped.
    Invalid(PredicateError),
}

/// The current rules, by name.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: BTreeMap<String, Compiled>,
}

impl RuleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the rule is meant for access-request notifications by us.
    pub fn applies_to_us(rule: &Rule) -> bool {
        rule.subjects.iter().any(|s| s == SUBJECT)
            && (rule.notification_name.is_empty() || rule.notification_name == PLUGIN_NAME)
    }

    /// Adds or replaces a rule (a watch PUT, or a listed rule).
    pub fn upsert(&mut self, rule: Rule) -> Stored {
        if !Self::applies_to_us(&rule) {
            self.rules.remove(&rule.name);
            return Stored::Ignored;
        }
        let predicate = Predicate::parse(&rule.condition);
        let stored = match &predicate {
            Ok(_) => Stored::Active,
            Err(e) => {
                tracing::warn!(rule = %rule.name, position = e.pos, error = %e.message, "Failed to parse access monitoring notification rule; skipping it");
                Stored::Invalid(e.clone())
            }
        };
        self.rules
            .insert(rule.name.clone(), Compiled { rule, predicate });
        stored
    }

    /// Removes a rule (a watch DELETE).
    pub fn remove(&mut self, name: &str) {
        self.rules.remove(name);
    }

    /// Replaces every rule (after a listing).
    pub fn replace_all(&mut self, rules: Vec<Rule>) {
        self.rules.clear();
        for r in rules {
            let _ = self.upsert(r);
        }
    }

    /// Rules held (valid or not).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is held.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules whose condition does not parse.
    pub fn invalid(&self) -> usize {
        self.rules.values().filter(|c| c.predicate.is_err()).count()
    }

    /// The recipients of every rule matching `env`, de-duplicated in rule-name
    /// order; `None` when no rule matches (then the config decides). An
    /// evaluation error counts as "no match" and is reported in `errors`.
    pub fn recipients(
        &self,
        env: &Env,
        errors: &mut Vec<(String, PredicateError)>,
    ) -> Option<Vec<String>> {
        let mut env = env.clone();
        env.plugin_name = PLUGIN_NAME.to_owned();
        let mut out: Vec<String> = Vec::new();
        let mut matched = false;
        for c in self.rules.values() {
            let Ok(p) = &c.predicate else { continue };
            match p.matches(&env) {
                Ok(true) => {
                    matched = true;
                    for r in &c.rule.recipients {
                        if !out.contains(r) {
                            out.push(r.clone());
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => errors.push((c.rule.name.clone(), e)),
            }
        }
        matched.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, condition: &str, recipients: &[&str]) -> Rule {
        Rule {
            name: name.into(),
            subjects: vec![SUBJECT.into()],
            condition: condition.into(),
            notification_name: PLUGIN_NAME.into(),
            recipients: recipients.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn env(roles: &[&str]) -> Env {
        Env {
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            ..Env::default()
        }
    }

    #[test]
    fn matching_rules_replace_the_config() {
        let mut set = RuleSet::new();
        assert_eq!(
            set.upsert(rule(
                "any",
                "!is_empty(access_request.spec.roles)",
                &["1001", "1002"]
            )),
            Stored::Active
        );
        assert_eq!(
            set.upsert(rule(
                "dev",
                r#"access_request.spec.roles.contains("dev")"#,
                &["1002", "1003"]
            )),
            Stored::Active
        );
        let mut errs = Vec::new();
        assert_eq!(
            set.recipients(&env(&["editor"]), &mut errs),
            Some(vec!["1001".into(), "1002".into()])
        );
        assert_eq!(
            set.recipients(&env(&["dev"]), &mut errs),
            Some(vec!["1001".into(), "1002".into(), "1003".into()])
        );
        assert_eq!(
            set.recipients(&env(&[]), &mut errs),
            None,
            "no match: the config decides"
        );
        set.remove("any");
        assert_eq!(set.recipients(&env(&["editor"]), &mut errs), None);
        assert!(errs.is_empty());
    }

    #[test]
    fn rules_for_others_are_ignored() {
        let mut set = RuleSet::new();
        let mut slack = rule("slack", "true", &["#x"]);
        slack.notification_name = "slack".into();
        assert_eq!(set.upsert(slack), Stored::Ignored);
        let mut other_subject = rule("other", "true", &["1"]);
        other_subject.subjects = vec!["access_list".into()];
        assert_eq!(set.upsert(other_subject), Stored::Ignored);
        assert!(set.is_empty());
        // Newer form: no notification name, the condition names the plugin.
        let mut newer = rule("newer", r#"plugin.spec.name == "discord""#, &["7"]);
        newer.notification_name.clear();
        assert_eq!(set.upsert(newer), Stored::Active);
        let mut newer_slack = rule("newer-slack", r#"plugin.spec.name == "slack""#, &["8"]);
        newer_slack.notification_name.clear();
        set.upsert(newer_slack);
        assert_eq!(
            set.recipients(&env(&["x"]), &mut Vec::new()),
            Some(vec!["7".into()])
        );
    }

    #[test]
    fn a_rule_changed_to_another_plugin_is_dropped() {
        let mut set = RuleSet::new();
        set.upsert(rule("r", "true", &["1"]));
        let mut moved = rule("r", "true", &["1"]);
        moved.notification_name = "slack".into();
        set.upsert(moved);
        assert!(set.is_empty());
    }

    #[test]
    fn invalid_and_failing_rules_are_skipped() {
        let mut set = RuleSet::new();
        assert!(
            matches!(set.upsert(rule("broken", "access_request.spec.roles.contains(", &["1"])), Stored::Invalid(e) if e.pos > 0)
        );
        set.upsert(rule(
            "typed",
            "access_request.spec.user.contains(\"x\")",
            &["2"],
        ));
        set.upsert(rule("good", "true", &["3"]));
        assert_eq!(set.invalid(), 1);
        let mut errs = Vec::new();
        assert_eq!(
            set.recipients(&env(&["a"]), &mut errs),
            Some(vec!["3".into()])
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "typed");
    }

    #[test]
    fn replace_all_resets() {
        let mut set = RuleSet::new();
        set.upsert(rule("a", "true", &["1"]));
        set.replace_all(vec![rule("b", "true", &["2"])]);
        assert_eq!(set.len(), 1);
        assert_eq!(
            set.recipients(&env(&[]), &mut Vec::new()),
            Some(vec!["2".into()])
        );
    }
}

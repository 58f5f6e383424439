//! Nova's extra-spec operators: does a host value satisfy a requirement such
//! as `>= 4`, `<in> avx2` or `<or> kvm <or> qemu`?
//!
//! The requirement is split on whitespace; its first word picks the operator:
//!
//! | operator | passes when |
//! |---|---|
//! | `=` | value ≥ operand, as numbers |
//! | `==`, `!=`, `>=`, `<=` | numeric comparison |
//! | `s==`, `s!=`, `s>=`, `s>`, `s<=`, `s<` | string comparison |
//! | `<in>` | operand is a substring of value |
//! | `<all-in>` | every operand is a substring of value |
//! | `<or>` | value equals one of the alternatives (`<or> a <or> b`) |
//!
//! Any other first word means the whole requirement is compared to the value
//! as a string. An operator without an operand never matches. Where Nova would
//! raise on a value or operand that is not a number, the requirement does not
//! match.

use std::cmp::Ordering;

/// The operators of a requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    /// `=`: numeric greater-or-equal.
    AtLeast,
    /// `==`, `!=`, `>=`, `<=`: numeric comparison passing on these orderings.
    Numeric(&'static [Ordering], bool),
    /// `s==` ... `s<`: string comparison passing on these orderings.
    Text(&'static [Ordering]),
    /// `<in>`
    Contains,
    /// `<all-in>`
    ContainsAll,
    /// `<or>`
    AnyOf,
}

const EQUAL: &[Ordering] = &[Ordering::Equal];
const NOT_EQUAL: &[Ordering] = &[Ordering::Less, Ordering::Greater];
const GREATER_OR_EQUAL: &[Ordering] = &[Ordering::Greater, Ordering::Equal];
const LESS_OR_EQUAL: &[Ordering] = &[Ordering::Less, Ordering::Equal];
const GREATER: &[Ordering] = &[Ordering::Greater];
const LESS: &[Ordering] = &[Ordering::Less];

fn operator(word: &str) -> Option<Operator> {
    Some(match word {
        "=" => Operator::AtLeast,
        "==" => Operator::Numeric(EQUAL, false),
        // `!=` passes on NaN as in Python, where `nan != x` is true.
        "!=" => Operator::Numeric(NOT_EQUAL, true),
        ">=" => Operator::Numeric(GREATER_OR_EQUAL, false),
        "<=" => Operator::Numeric(LESS_OR_EQUAL, false),
        "s==" => Operator::Text(EQUAL),
        "s!=" => Operator::Text(NOT_EQUAL),
        "s>=" => Operator::Text(GREATER_OR_EQUAL),
        "s>" => Operator::Text(GREATER),
        "s<=" => Operator::Text(LESS_OR_EQUAL),
        "s<" => Operator::Text(LESS),
        "<in>" => Operator::Contains,
        "<all-in>" => Operator::ContainsAll,
        "<or>" => Operator::AnyOf,
        _ => return None,
    })
}

/// Parses a number the way Python's `float()` does for the usual spellings
/// (surrounding whitespace, exponents, `inf`, `nan`, `_` between digits).
pub fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.contains('_') {
        let digits_around = text
            .char_indices()
            .filter(|(_, c)| *c == '_')
            .all(|(at, _)| {
                let before = text[..at].chars().next_back();
                let after = text[at + 1..].chars().next();
                before.is_some_and(|c| c.is_ascii_digit())
                    && after.is_some_and(|c| c.is_ascii_digit())
            });
        if !digits_around {
            return None;
        }
        return text.replace('_', "").parse().ok();
    }
    text.parse().ok()
}

fn numeric(value: &str, operand: &str, accepted: &[Ordering], nan_passes: bool) -> bool {
    match (parse_number(value), parse_number(operand)) {
        (Some(value), Some(operand)) => match value.partial_cmp(&operand) {
            Some(ordering) => accepted.contains(&ordering),
            None => nan_passes,
        },
        _ => false,
    }
}

/// Whether host `value` satisfies extra-spec `requirement` (see the module
/// documentation for the operators).
pub fn matches(value: &str, requirement: &str) -> bool {
    let mut words = requirement.split_whitespace();
    let Some(op) = words.next().and_then(operator) else {
        return value == requirement;
    };
    let operands: Vec<&str> = words.collect();
    let Some(first) = operands.first().copied() else {
        return false;
    };
    match op {
        Operator::AtLeast => numeric(value, first, GREATER_OR_EQUAL, false),
        Operator::Numeric(accepted, nan_passes) => numeric(value, first, accepted, nan_passes),
        Operator::Text(accepted) => accepted.contains(&value.cmp(first)),
        Operator::Contains => value.contains(first),
        Operator::ContainsAll => operands.iter().all(|operand| value.contains(operand)),
        // `<or> a <or> b`: the alternatives are every other word; the words
        // between them are taken as the `<or>` keywords without checking.
        Operator::AnyOf => operands
            .iter()
            .step_by(2)
            .any(|alternative| *alternative == value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cases: &[(&str, &str, bool)]) {
        for (value, requirement, expected) in cases {
            assert_eq!(
                matches(value, requirement),
                *expected,
                "value {value:?} requirement {requirement:?}"
            );
        }
    }

    #[test]
    fn no_operator_is_string_equality_of_the_whole_requirement() {
        check(&[
            ("1", "1", true),
            ("", "1", false),
            ("3", "1", false),
            ("222", "2", false),
            // An unknown first word is not an operator.
            ("4", "> 2", false),
            ("> 2", "> 2", true),
            ("a b", "a b", true),
            ("", "", true),
        ]);
    }

    #[test]
    fn equals_sign_is_numeric_at_least() {
        check(&[
            ("123", "= 123", true),
            ("124", "= 123", true),
            ("34", "= 234", false),
            ("34", "=", false),
            ("1024.5", "= 1024", true),
            ("1e3", "= 999", true),
            (" 12 ", "= 12", true),
            ("abc", "= 1", false),
            ("1", "= abc", false),
        ]);
    }

    #[test]
    fn numeric_operators() {
        check(&[
            ("2", "<= 10", true),
            ("3", "<= 2", false),
            ("3", ">= 1", true),
            ("2", ">= 3", false),
            ("2", ">= 2", true),
            ("10", "== 10.0", true),
            ("10", "== 11", false),
            ("10", "!= 11", true),
            ("10", "!= 10", false),
            // Numeric, not string: "10" > "9" numerically.
            ("10", ">= 9", true),
            ("1_000", ">= 999", true),
            ("1__0", ">= 1", false),
            ("x", "!= 1", false),
            ("nan", "!= 1", true),
            ("nan", "== nan", false),
            ("inf", ">= 1e308", true),
        ]);
    }

    #[test]
    fn string_operators() {
        check(&[
            ("123", "s== 123", true),
            ("1234", "s== 123", false),
            ("1234", "s!= 123", true),
            ("123", "s!= 123", false),
            ("1000", "s>= 234", false),
            ("234", "s>= 234", true),
            ("1234", "s<= 1000", false),
            ("1000", "s<= 1000", true),
            ("2", "s< 12", false),
            ("12", "s< 2", true),
            ("12", "s> 2", false),
            ("2", "s> 12", true),
            ("abc", "s==", false),
        ]);
    }

    #[test]
    fn in_is_substring() {
        check(&[
            ("12311321", "<in> 11", true),
            ("12311321", "<in> 12311321", true),
            ("12311321", "<in> 12311321 <in>", true),
            ("12310321", "<in> 11", false),
            ("12310321", "<in> 11 <in>", false),
            ("anything", "<in>", false),
        ]);
    }

    #[test]
    fn all_in_needs_every_operand() {
        let features = "['aes', 'mmx', 'aux']";
        check(&[
            (features, "<all-in> aes mmx", true),
            (features, "<all-in> mmx", true),
            (features, "<all-in>  txt", false),
            (features, "<all-in> txt 3dnow", false),
            (features, "<all-in> txt aes", false),
            (features, "<all-in>", false),
        ]);
    }

    #[test]
    fn or_matches_any_alternative() {
        check(&[
            ("12", "<or> 11 <or> 12", true),
            ("12", "<or> 11 <or> 12 <or>", true),
            ("13", "<or> 11 <or> 12", false),
            ("13", "<or> 11 <or> 12 <or>", false),
            ("11", "<or> 11", true),
            ("11", "<or>", false),
            // Alternatives are exact, not substrings.
            ("1", "<or> 11 <or> 12", false),
        ]);
    }

    #[test]
    fn python_float_spellings() {
        assert_eq!(parse_number(" 42 "), Some(42.0));
        assert_eq!(parse_number("1_0"), Some(10.0));
        assert_eq!(parse_number("_10"), None);
        assert_eq!(parse_number("10_"), None);
        assert_eq!(parse_number("-2.5e1"), Some(-25.0));
        assert_eq!(parse_number(""), None);
    }
}

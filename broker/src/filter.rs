//! SQL92 message filters (`MessageSelector.bySql`), with `enablePropertyFilter`.
//!
//! RocketMQ accepts a small part of SQL over message properties: comparisons (`=`, `<>`, `>`,
//! `>=`, `<`, `<=`), `BETWEEN`, `IN`, `IS [NOT] NULL`, `AND` / `OR` / `NOT`, numeric, string
//! (`'...'`) and boolean literals. Properties are strings; compared with a number they are
//! read as numbers. A missing property makes a comparison unknown, and as in SQL an unknown
//! never selects a message (`NOT unknown` is unknown too).
//!
//! The expression is parsed once per subscription by sqlparser (its recursion limit bounds
//! hostile nesting), checked against that subset, and evaluated per message.

use std::collections::HashMap;

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// A compiled SQL92 filter.
#[derive(Debug, Clone)]
pub struct SqlFilter {
    expr: Expr,
}

/// A value during evaluation; `None` (SQL's unknown) is represented outside it.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl SqlFilter {
    /// Parses and checks an expression; the error reads as RocketMQ's parse failures do.
    pub fn compile(text: &str) -> Result<SqlFilter, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the SQL92 expression is empty".into());
        }
        if text.len() > 4096 {
            return Err("the SQL92 expression is longer than 4096 characters".into());
        }
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(text)
            .and_then(|mut p| {
                let e = p.parse_expr()?;
                // Everything must be one expression: trailing tokens are an error.
                if p.peek_token().token != sqlparser::tokenizer::Token::EOF {
                    return Err(sqlparser::parser::ParserError::ParserError(format!(
                        "unexpected `{}` after the expression",
                        p.peek_token().token
                    )));
                }
                Ok(e)
            })
            .map_err(|e| format!("Parse the expression `{text}` failed: {e}"))?;
        check(&expr)?;
        Ok(SqlFilter { expr })
    }

    /// Whether a message with these properties is selected.
    pub fn matches(&self, props: &HashMap<String, String>) -> bool {
        truth(&eval(&self.expr, props)) == Some(true)
    }
}

/// Refuses what RocketMQ's grammar does not have (functions, arithmetic, subqueries, ...).
fn check(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => Ok(()),
        Expr::Value(v) => match &v.value {
            Value::Number(..) | Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null => {
                Ok(())
            }
            other => Err(format!("unsupported literal `{other}`")),
        },
        Expr::Nested(inner) | Expr::IsNull(inner) | Expr::IsNotNull(inner) => check(inner),
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus => check(expr),
            other => Err(format!("unsupported operator `{other}`")),
        },
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
            | BinaryOperator::And
            | BinaryOperator::Or => {
                check(left)?;
                check(right)
            }
            other => Err(format!("unsupported operator `{other}`")),
        },
        Expr::Between {
            expr, low, high, ..
        } => {
            check(expr)?;
            check(low)?;
            check(high)
        }
        Expr::InList { expr, list, .. } => {
            check(expr)?;
            list.iter().try_for_each(check)
        }
        other => Err(format!("unsupported expression `{other}`")),
    }
}

fn number(s: &str) -> Option<Val> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(Val::Int(i));
    }
    // Java's Long literal suffix, as in `a > 10L`.
    if let Some(i) = s
        .strip_suffix(['L', 'l'])
        .and_then(|t| t.parse::<i64>().ok())
    {
        return Some(Val::Int(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Val::Float)
}

fn eval(e: &Expr, props: &HashMap<String, String>) -> Option<Val> {
    match e {
        Expr::Identifier(id) => props.get(&id.value).cloned().map(Val::Str),
        Expr::CompoundIdentifier(parts) => {
            let name = parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join(".");
            props.get(&name).cloned().map(Val::Str)
        }
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => number(n),
            Value::SingleQuotedString(s) => Some(Val::Str(s.clone())),
            Value::Boolean(b) => Some(Val::Bool(*b)),
            _ => None,
        },
        Expr::Nested(inner) => eval(inner, props),
        Expr::IsNull(inner) => Some(Val::Bool(eval(inner, props).is_none())),
        Expr::IsNotNull(inner) => Some(Val::Bool(eval(inner, props).is_some())),
        Expr::UnaryOp { op, expr } => {
            let v = eval(expr, props)?;
            match op {
                UnaryOperator::Not => truth(&Some(v)).map(|b| Val::Bool(!b)),
                UnaryOperator::Minus => match as_number(&v)? {
                    Val::Int(i) => i.checked_neg().map(Val::Int),
                    Val::Float(f) => Some(Val::Float(-f)),
                    _ => None,
                },
                _ => as_number(&v),
            }
        }
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => {
                let l = truth(&eval(left, props));
                if l == Some(false) {
                    return Some(Val::Bool(false));
                }
                let r = truth(&eval(right, props));
                match (l, r) {
                    (_, Some(false)) => Some(Val::Bool(false)),
                    (Some(true), Some(true)) => Some(Val::Bool(true)),
                    _ => None,
                }
            }
            BinaryOperator::Or => {
                let l = truth(&eval(left, props));
                if l == Some(true) {
                    return Some(Val::Bool(true));
                }
                let r = truth(&eval(right, props));
                match (l, r) {
                    (_, Some(true)) => Some(Val::Bool(true)),
                    (Some(false), Some(false)) => Some(Val::Bool(false)),
                    _ => None,
                }
            }
            _ => {
                let ord = compare(&eval(left, props)?, &eval(right, props)?);
                let b = match op {
                    BinaryOperator::Eq => ord? == std::cmp::Ordering::Equal,
                    BinaryOperator::NotEq => ord? != std::cmp::Ordering::Equal,
                    BinaryOperator::Lt => ord? == std::cmp::Ordering::Less,
                    BinaryOperator::LtEq => ord? != std::cmp::Ordering::Greater,
                    BinaryOperator::Gt => ord? == std::cmp::Ordering::Greater,
                    BinaryOperator::GtEq => ord? != std::cmp::Ordering::Less,
                    _ => return None,
                };
                Some(Val::Bool(b))
            }
        },
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let v = eval(expr, props)?;
            let lo = compare(&v, &eval(low, props)?)?;
            let hi = compare(&v, &eval(high, props)?)?;
            let inside = lo != std::cmp::Ordering::Less && hi != std::cmp::Ordering::Greater;
            Some(Val::Bool(inside != *negated))
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, props)?;
            let found = list.iter().any(|item| {
                eval(item, props)
                    .and_then(|i| compare(&v, &i))
                    .is_some_and(|o| o == std::cmp::Ordering::Equal)
            });
            Some(Val::Bool(found != *negated))
        }
        _ => None,
    }
}

fn truth(v: &Option<Val>) -> Option<bool> {
    match v {
        Some(Val::Bool(b)) => Some(*b),
        Some(Val::Str(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Val::Str(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn as_number(v: &Val) -> Option<Val> {
    match v {
        Val::Int(_) | Val::Float(_) => Some(v.clone()),
        Val::Str(s) => number(s),
        Val::Bool(_) => None,
    }
}

/// Orders two values: numbers numerically (a string next to a number is read as one),
/// strings as strings, booleans with booleans. `None`: not comparable (unknown).
fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Str(s)) | (Val::Str(s), Val::Bool(x)) => {
            let y = truth(&Some(Val::Str(s.clone())))?;
            let o = x.cmp(&y);
            Some(if matches!(a, Val::Bool(_)) {
                o
            } else {
                o.reverse()
            })
        }
        (Val::Bool(_), _) | (_, Val::Bool(_)) => None,
        _ => match (as_number(a)?, as_number(b)?) {
            (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
            (x, y) => {
                let f = |v: Val| match v {
                    Val::Int(i) => i as f64,
                    Val::Float(f) => f,
                    _ => f64::NAN,
                };
                f(x).partial_cmp(&f(y))
            }
        },
    }
}

/// Compiled filters by expression, so each subscription's SQL is parsed once.
#[derive(Default)]
pub struct SqlCache {
    compiled: parking_lot::Mutex<HashMap<String, std::sync::Arc<SqlFilter>>>,
}

impl SqlCache {
    /// The compiled filter for `expr`, or RocketMQ's parse error.
    pub fn get(&self, expr: &str) -> Result<std::sync::Arc<SqlFilter>, String> {
        if let Some(f) = self.compiled.lock().get(expr) {
            return Ok(f.clone());
        }
        let f = std::sync::Arc::new(SqlFilter::compile(expr)?);
        let mut map = self.compiled.lock();
        // Bounded: subscriptions come and go; start over rather than grow without end.
        if map.len() >= 4096 {
            map.clear();
        }
        map.insert(expr.to_string(), f.clone());
        Ok(f)
    }
}

/// A pull filter for a SQL92 subscription: every tags code passes; each record's
/// properties decide.
pub struct SqlMessageFilter(pub std::sync::Arc<SqlFilter>);

impl crate::store::MessageFilter for SqlMessageFilter {
    fn matches_tags_code(&self, _tags_code: i64) -> bool {
        true
    }

    fn matches_record(&self, record: &bytes::Bytes) -> bool {
        let mut b = record.clone();
        match rmq_remoting::message::MessageExt::decode(&mut b) {
            Ok(m) => self.0.matches(&m.properties),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(expr: &str, kv: &[(&str, &str)]) -> bool {
        SqlFilter::compile(expr).unwrap().matches(&props(kv))
    }

    #[test]
    fn rocketmq_examples() {
        assert!(sel("a between 0 and 3", &[("a", "2")]));
        assert!(!sel("a between 0 and 3", &[("a", "4")]));
        assert!(sel("a NOT BETWEEN 0 AND 3", &[("a", "4")]));
        assert!(sel(
            "TAGS is not null and TAGS in ('TagA', 'TagB')",
            &[("TAGS", "TagB")]
        ));
        assert!(!sel(
            "TAGS is not null and TAGS in ('TagA', 'TagB')",
            &[("TAGS", "TagC")]
        ));
        assert!(sel(
            "region = 'eu' AND (price > 9.5 OR vip = TRUE)",
            &[("region", "eu"), ("price", "10"), ("vip", "false")]
        ));
        assert!(sel(
            "region = 'eu' AND (price > 9.5 OR vip = TRUE)",
            &[("region", "eu"), ("price", "1"), ("vip", "true")]
        ));
        assert!(!sel(
            "region = 'eu' AND (price > 9.5 OR vip = TRUE)",
            &[("region", "us"), ("price", "99")]
        ));
        assert!(sel("a <> 'x'", &[("a", "y")]));
        assert!(sel("a >= -2 AND a <= 2", &[("a", "-1")]));
        assert!(sel("a.b = 1", &[("a.b", "1")]));
        assert!(sel("a IS NULL", &[]));
        assert!(sel("a = 10L", &[("a", "10")]));
        assert!(sel("a NOT IN (1, 2)", &[("a", "3")]));
    }

    #[test]
    fn unknown_never_selects() {
        // Missing property: unknown, also under NOT.
        assert!(!sel("a > 1", &[]));
        assert!(!sel("NOT (a > 1)", &[]));
        assert!(!sel("a = 'x' OR b > 1", &[("b", "zero")]));
        // ...but OR with a true side is true, AND with a false side false.
        assert!(sel("a > 1 OR b = 2", &[("b", "2")]));
        assert!(!sel("NOT (a > 1 AND b = 2)", &[("b", "2")]));
        assert!(sel("NOT (a > 1 AND b = 2)", &[("b", "3")]));
        // A string that is not a number, compared with one.
        assert!(!sel("a > 1", &[("a", "many")]));
    }

    #[test]
    fn refused_expressions() {
        for bad in [
            "",
            "a >",
            "a + 1 > 2",
            "upper(a) = 'X'",
            "a > 1 garbage",
            "a IN (SELECT 1)",
            "a LIKE 'x%'",
            "(SELECT 1)",
        ] {
            assert!(SqlFilter::compile(bad).is_err(), "{bad} accepted");
        }
        // Hostile nesting is an error, not a stack overflow.
        let deep = format!("{}a = 1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(SqlFilter::compile(&deep).is_err());
    }
}

//! JsonFilter: evaluates the `query` scheduler hint (a JSON list in
//! Nova's little prefix language) against one host, with Python's
//! truthiness and comparison rules.

use serde_json::Value;

use super::{HostState, RequestSpec};

/// JsonFilter: the `query` hint evaluated against the host. A query that
/// is not valid JSON, or uses an unknown operator, rejects the host (Nova
/// raises inside the filter, which fails the scheduling request).
pub fn json_filter(h: &HostState, spec: &RequestSpec) -> bool {
    let query = match &spec.query {
        None => return true,
        Some(Value::String(s)) if s.is_empty() => return true,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            Err(_) => return false,
        },
        Some(v) => v.clone(),
    };
    if !truthy(&query) {
        return true;
    }
    match eval_json(&query, h) {
        Some(Value::Array(items)) => items.iter().any(truthy),
        Some(v) => truthy(&v),
        None => false,
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A number as Python sees it (bools are 0/1).
fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn py_eq(a: &Value, b: &Value) -> bool {
    match (as_num(a), as_num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `a <op> b` for the ordering operators; mixed types compare false.
fn py_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (as_num(a), as_num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

/// Evaluates one query list; `None` when it cannot be evaluated.
fn eval_json(query: &Value, h: &HostState) -> Option<Value> {
    let items = query.as_array()?;
    if items.is_empty() {
        return Some(Value::Bool(true));
    }
    let cmd = items[0].as_str()?;
    let mut args: Vec<Value> = Vec::new();
    for arg in &items[1..] {
        let cooked = match arg {
            Value::Array(_) => Some(eval_json(arg, h)?),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => match s.strip_prefix('$') {
                Some(name) => {
                    let mut path = name.split('.');
                    let first = path.next().unwrap_or_default();
                    let mut v = h.attribute(first);
                    for key in path {
                        v = v.and_then(|x| x.get(key).cloned());
                    }
                    v
                }
                None => Some(arg.clone()),
            },
            other => Some(other.clone()),
        };
        if let Some(c) = cooked {
            args.push(c);
        }
    }
    use std::cmp::Ordering::*;
    let compare = |ok: &dyn Fn(&Value, &Value) -> bool| -> Value {
        Value::Bool(args.len() >= 2 && args[1..].iter().all(|b| ok(&args[0], b)))
    };
    Some(match cmd {
        "=" => compare(&py_eq),
        "<" => compare(&|a, b| py_cmp(a, b) == Some(Less)),
        ">" => compare(&|a, b| py_cmp(a, b) == Some(Greater)),
        "<=" => compare(&|a, b| matches!(py_cmp(a, b), Some(Less | Equal))),
        ">=" => compare(&|a, b| matches!(py_cmp(a, b), Some(Greater | Equal))),
        "in" => Value::Bool(args.len() >= 2 && args[1..].iter().any(|b| py_eq(&args[0], b))),
        "not" => Value::Array(args.iter().map(|a| Value::Bool(!truthy(a))).collect()),
        "or" => Value::Bool(args.iter().any(truthy)),
        "and" => Value::Bool(args.iter().all(truthy)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::*;
    use crate::scheduler::{select_host, Weights};
    use serde_json::json;

    #[test]
    fn json_filter_queries() {
        let mut hosts = three();
        hosts[0].instance_memory_mb = 64000;
        let mut s = spec("a");
        s.query = Some(json!("[\">=\", \"$free_ram_mb\", 30000]"));
        assert!(!json_filter(&hosts[0], &s));
        assert!(json_filter(&hosts[1], &s));
        s.query = Some(json!([
            "and",
            ["=", "$host", "h3"],
            [">", "$vcpus_total", 8]
        ]));
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h3".into())
        );
        s.query = Some(json!(["in", "$host", "h1", "h2"]));
        assert!(json_filter(&hosts[0], &s) && !json_filter(&hosts[2], &s));
        s.query = Some(json!(["not", ["=", "$host", "h1"]]));
        assert!(!json_filter(&hosts[0], &s) && json_filter(&hosts[1], &s));
        s.query = Some(json!(["or", ["=", "$host", "h1"], ["=", "$host", "h2"]]));
        assert!(json_filter(&hosts[1], &s) && !json_filter(&hosts[2], &s));
        // Unknown attribute: dropped, so a one-argument compare is false.
        s.query = Some(json!(["=", "$nope", 1]));
        assert!(!json_filter(&hosts[0], &s));
        // Unknown operator or bad JSON rejects.
        s.query = Some(json!(["~", "$host", "h1"]));
        assert!(!json_filter(&hosts[0], &s));
        s.query = Some(json!("[not json"));
        assert!(!json_filter(&hosts[0], &s));
        // Empty query passes.
        s.query = Some(json!(""));
        assert!(json_filter(&hosts[0], &s));
        s.query = Some(json!([]));
        assert!(json_filter(&hosts[0], &s));
    }
}

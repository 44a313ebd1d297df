//! The REST routes of `/ip route` and `/ipv6 route` (wired into
//! [`crate::api::route`]; the menus are [`crate::route_ops`]):
//!
//! | route | methods |
//! |---|---|
//! | `/rest/ip/route`, `/rest/ipv6/route` | `GET` the routes (connected and static, as `print`), `PUT` (add a static route: 201 and the new row) |
//! | `/rest/ip/route/ID`, `/rest/ipv6/route/ID` | `GET`, `DELETE` (remove a static route: 204) |
//! | `.../route/add` | `POST` (the command form: `{"ret": "*2"}`) |
//! | `.../route/remove` | `POST` `{".id": "*2"}` or `{".id": "*2,*3"}` (200, `[]`) |
//!
//! | `/rest/ip/arp`, `/rest/ipv6/neighbor` | `GET` the neighbour tables, merged over the workers ([`RouteControl::neighbors`]), `PUT` (add a static entry: 201 and its row) |
//! | `/rest/ip/arp/ID`, `/rest/ipv6/neighbor/ID` | `GET`, `DELETE` (a static entry: 204) |
//! | `.../add`, `.../remove` | `POST`, as for routes |
//!
//! Without router mode (no `/ip address` in the rules) every route answers
//! 503. A bad property or value is a 400 naming it; nothing changes then.

use serde_json::Value;

use crate::http::{Reply, Req};
use crate::ops::Dataplane;
use crate::route_ops::{RouteControl, RouteError};
use dataplane::flow::Family;

const IP_ROUTE: &str = "/rest/ip/route";
const IPV6_ROUTE: &str = "/rest/ipv6/route";

/// The family and the rest of the path (`""`, `/ID`, `/add`, `/remove`),
/// if `path` is one of this module's.
pub(crate) fn owns(path: &str) -> Option<(Family, &str)> {
    for (base, fam) in [(IP_ROUTE, Family::V4), (IPV6_ROUTE, Family::V6)] {
        if let Some(rest) = path.strip_prefix(base)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Some((fam, rest));
        }
    }
    None
}

const IP_ARP: &str = "/rest/ip/arp";
const IPV6_NEIGHBOR: &str = "/rest/ipv6/neighbor";

/// The family and the rest of the path (`""` or `/ID`) if `path` is one of
/// the neighbour tables'.
pub(crate) fn owns_neighbors(path: &str) -> Option<(Family, &str)> {
    for (base, fam) in [(IP_ARP, Family::V4), (IPV6_NEIGHBOR, Family::V6)] {
        if let Some(rest) = path.strip_prefix(base)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Some((fam, rest));
        }
    }
    None
}

/// Answers a request for a path [`owns_neighbors`] gave `(fam, rest)` for.
pub(crate) fn neighbors(req: &mut Req<'_>, dp: &dyn Dataplane, fam: Family, rest: &str) -> Reply {
    let method = req.method;
    let Some(control) = dp.routes() else {
        return Reply::error(
            503,
            "not in router mode: no /ip address in the rules".to_string(),
            String::new(),
        );
    };
    let c: &RouteControl = &control;
    let rows = || -> Result<Vec<Value>, Reply> {
        dp.neighbors()
            .map(|r| c.neighbors(fam, r))
            .map_err(|e| Reply::error(503, e.to_string(), String::new()))
    };
    let row = |id: &str| -> Result<Option<Value>, Reply> {
        Ok(rows()?.into_iter().find(|r| r[".id"] == id))
    };
    match rest {
        "" => match method {
            "GET" => match rows() {
                Ok(r) => Reply::json(200, &r),
                Err(e) => e,
            },
            "PUT" => match changes(req).map(|ch| c.add_neighbor(fam, &ch)) {
                Ok(Ok(id)) => match row(&id) {
                    Ok(r) => Reply::json(201, &r.unwrap_or(Value::Null)),
                    Err(e) => e,
                },
                Ok(Err(e)) => error(e),
                Err(r) => r,
            },
            _ => not_allowed(method, "GET, PUT"),
        },
        "/add" => match method {
            "POST" => match changes(req).map(|ch| c.add_neighbor(fam, &ch)) {
                Ok(Ok(id)) => Reply::json(200, &serde_json::json!({ "ret": id })),
                Ok(Err(e)) => error(e),
                Err(r) => r,
            },
            _ => not_allowed(method, "POST"),
        },
        "/remove" => match method {
            "POST" => {
                let now = match rows() {
                    Ok(r) => r,
                    Err(e) => return e,
                };
                crate::api::remove_ids(
                    req,
                    |id| match now.iter().find(|r| r[".id"] == id) {
                        Some(r) if r["dynamic"] == "false" => Ok(()),
                        Some(_) => Err(RouteError::Invalid(format!(
                            "{id}: a dynamic entry (it ages out)"
                        ))),
                        None => Err(RouteError::NotFound(id.to_string())),
                    },
                    |id| c.remove_neighbor(fam, id),
                    error,
                )
            }
            _ => not_allowed(method, "POST"),
        },
        id => {
            let id = &id[1..];
            match method {
                "GET" => match row(id) {
                    Ok(Some(r)) => Reply::json(200, &r),
                    Ok(None) => error(RouteError::NotFound(id.to_string())),
                    Err(e) => e,
                },
                "DELETE" => match c.remove_neighbor(fam, id) {
                    Ok(()) => Reply::empty(204),
                    Err(e) => error(e),
                },
                _ => not_allowed(method, "GET, DELETE"),
            }
        }
    }
}

fn not_allowed(method: &str, allow: &str) -> Reply {
    Reply::error(
        405,
        format!("{method} is not allowed here"),
        format!("allowed: {allow}"),
    )
    .with_header("Allow", allow)
}

fn error(e: RouteError) -> Reply {
    let status = match e {
        RouteError::Invalid(_) => 400,
        RouteError::NotFound(_) => 404,
        RouteError::Unavailable(_) => 503,
    };
    Reply::error(status, e.to_string(), String::new())
}

fn changes(req: &mut Req<'_>) -> Result<Vec<(String, String)>, Reply> {
    let obj = crate::api::command_body(req)?;
    crate::flow_ops::changes_of(obj)
        .map_err(|e| Reply::error(400, format!("body: {e}"), "body".into()))
}

fn row(c: &RouteControl, fam: Family, id: &str) -> Option<Value> {
    c.print(fam).into_iter().find(|r| r[".id"] == id)
}

/// Answers a request for a path [`owns`] gave `(fam, rest)` for.
pub(crate) fn route(req: &mut Req<'_>, dp: &dyn Dataplane, fam: Family, rest: &str) -> Reply {
    let method = req.method;
    let Some(control) = dp.routes() else {
        return Reply::error(
            503,
            "not in router mode: no /ip address in the rules".to_string(),
            String::new(),
        );
    };
    let c: &RouteControl = &control;
    match rest {
        "" => match method {
            "GET" => Reply::json(200, &c.print(fam)),
            "PUT" => match changes(req).map(|ch| c.add(fam, &ch)) {
                Ok(Ok(id)) => Reply::json(201, &row(c, fam, &id).unwrap_or(Value::Null)),
                Ok(Err(e)) => error(e),
                Err(r) => r,
            },
            _ => not_allowed(method, "GET, PUT"),
        },
        "/add" => match method {
            "POST" => match changes(req).map(|ch| c.add(fam, &ch)) {
                Ok(Ok(id)) => Reply::json(200, &serde_json::json!({ "ret": id })),
                Ok(Err(e)) => error(e),
                Err(r) => r,
            },
            _ => not_allowed(method, "POST"),
        },
        "/remove" => match method {
            "POST" => crate::api::remove_ids(
                req,
                |id| match row(c, fam, id) {
                    Some(r) if r["static"] == "true" => Ok(()),
                    Some(_) => Err(RouteError::Invalid(format!(
                        "{id}: a connected route is its address's (remove the address)"
                    ))),
                    None => Err(RouteError::NotFound(id.to_string())),
                },
                |id| c.remove(fam, id),
                error,
            ),
            _ => not_allowed(method, "POST"),
        },
        id => {
            let id = &id[1..];
            match method {
                "GET" => match row(c, fam, id) {
                    Some(r) => Reply::json(200, &r),
                    None => error(RouteError::NotFound(id.to_string())),
                },
                "DELETE" => match c.remove(fam, id) {
                    Ok(()) => Reply::empty(204),
                    Err(e) => error(e),
                },
                _ => not_allowed(method, "GET, DELETE"),
            }
        }
    }
}

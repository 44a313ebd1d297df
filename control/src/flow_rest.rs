//! The REST routes of `/ip traffic-flow` (wired into [`crate::api::route`]):
//!
//! | route | methods |
//! |---|---|
//! | `/rest/ip/traffic-flow` | `GET` the menu, `PATCH` (set) |
//! | `/rest/ip/traffic-flow/set` | `POST` (set, the command form) |
//! | `/rest/ip/traffic-flow/target` | `GET` the list, `PUT` (add: 201 and the new target) |
//! | `/rest/ip/traffic-flow/target/ID` | `GET`, `PATCH` (set), `DELETE` (remove: 204) |
//! | `/rest/ip/traffic-flow/target/add` | `POST` (RouterOS's command form: `{"ret": "*1"}`) |
//! | `/rest/ip/traffic-flow/target/remove` | `POST` `{".id": "*1"}` or `{".id": "*1,*2"}` (200, `[]`) |
//!
//! Bodies are JSON objects of RouterOS property names; values strings
//! (booleans and numbers taken as written). A bad value is a 400 whose
//! `detail` names the field; nothing is applied then
//! ([`crate::flow_ops::FlowControl`]). Without a running dataplane (no
//! menu) every route answers 503.

use serde_json::Value;

use crate::flow_ops::{self, FlowControl, FlowOpsError};
use crate::http::{Reply, Req};
use crate::ops::Dataplane;

pub(crate) const TRAFFIC_FLOW: &str = "/rest/ip/traffic-flow";
const SET: &str = "/rest/ip/traffic-flow/set";
const TARGET: &str = "/rest/ip/traffic-flow/target";
const TARGET_ADD: &str = "/rest/ip/traffic-flow/target/add";
const TARGET_REMOVE: &str = "/rest/ip/traffic-flow/target/remove";

/// Whether `path` is one of this module's.
pub(crate) fn owns(path: &str) -> bool {
    path == TRAFFIC_FLOW || path.starts_with("/rest/ip/traffic-flow/")
}

fn not_allowed(method: &str, path: &str, allow: &str) -> Reply {
    Reply::error(
        405,
        format!("{method} is not allowed on {path}"),
        format!("allowed: {allow}"),
    )
    .with_header("Allow", allow)
}

fn error(e: FlowOpsError) -> Reply {
    match &e {
        // The message names the field.
        FlowOpsError::Invalid(_) => Reply::error(400, e.to_string(), String::new()),
        FlowOpsError::NotFound(_) => Reply::error(404, e.to_string(), String::new()),
        FlowOpsError::Stopped => Reply::error(503, e.to_string(), String::new()),
    }
}

fn changes(req: &mut Req<'_>) -> Result<Vec<(String, String)>, Reply> {
    let obj = crate::api::command_body(req)?;
    flow_ops::changes_of(obj).map_err(|e| Reply::error(400, format!("body: {e}"), "body".into()))
}

/// `remove` in the command form: every id of `.id` checked before any is
/// removed.
fn remove(req: &mut Req<'_>, c: &FlowControl) -> Reply {
    crate::api::remove_ids(
        req,
        |id| c.target(id).map(drop),
        |id| c.remove_target(id),
        error,
    )
}

/// Answers a request for a path [`owns`] says is ours.
pub(crate) fn route(req: &mut Req<'_>, path: &str, dp: &dyn Dataplane) -> Reply {
    let method = req.method;
    let Some(control) = dp.traffic_flow() else {
        return Reply::error(
            503,
            "flow export is not running in this process".to_string(),
            String::new(),
        );
    };
    let c: &FlowControl = &control;
    let set = |req: &mut Req<'_>| match changes(req) {
        Ok(ch) => match c.set(&ch) {
            Ok(tf) => Reply::json(200, &flow_ops::menu_json(&tf)),
            Err(e) => error(e),
        },
        Err(r) => r,
    };
    let target_reply =
        |status, (id, t): (u32, _)| Reply::json(status, &flow_ops::target_json(id, &t));
    match path {
        TRAFFIC_FLOW => match method {
            "GET" => Reply::json(200, &flow_ops::menu_json(&c.settings())),
            "PATCH" => set(req),
            _ => not_allowed(method, path, "GET, PATCH"),
        },
        SET => match method {
            "POST" => set(req),
            _ => not_allowed(method, path, "POST"),
        },
        TARGET => match method {
            "GET" => {
                let all: Vec<Value> = c
                    .targets()
                    .iter()
                    .map(|(id, t)| flow_ops::target_json(*id, t))
                    .collect();
                Reply::json(200, &all)
            }
            "PUT" => match changes(req).map(|ch| c.add_target(&ch)) {
                Ok(Ok(t)) => target_reply(201, t),
                Ok(Err(e)) => error(e),
                Err(r) => r,
            },
            _ => not_allowed(method, path, "GET, PUT"),
        },
        TARGET_ADD => match method {
            "POST" => match changes(req).map(|ch| c.add_target(&ch)) {
                Ok(Ok((id, _))) => {
                    Reply::json(200, &serde_json::json!({ "ret": flow_ops::target_id(id) }))
                }
                Ok(Err(e)) => error(e),
                Err(r) => r,
            },
            _ => not_allowed(method, path, "POST"),
        },
        TARGET_REMOVE => match method {
            "POST" => remove(req, c),
            _ => not_allowed(method, path, "POST"),
        },
        p => match p.strip_prefix(TARGET).and_then(|r| r.strip_prefix('/')) {
            Some(id) if !id.contains('/') => match method {
                "GET" => c.target(id).map_or_else(error, |t| target_reply(200, t)),
                "PATCH" => match changes(req).map(|ch| c.set_target(id, &ch)) {
                    Ok(Ok(t)) => target_reply(200, t),
                    Ok(Err(e)) => error(e),
                    Err(r) => r,
                },
                "DELETE" => c
                    .remove_target(id)
                    .map_or_else(error, |()| Reply::empty(204)),
                _ => not_allowed(method, path, "GET, PATCH, DELETE"),
            },
            _ => Reply::error(404, format!("no such path: {p}"), String::new()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::api::tests::{assert_error, call, json_of, start};
    use crate::flow_export::TrafficFlow;
    use crate::flow_ops::FlowControl;
    use crate::ops::FakeDataplane;

    #[test]
    fn the_menu_and_its_targets_over_rest() {
        let control = Arc::new(FlowControl::for_tests(TrafficFlow::default()));
        let dp = Arc::new(FakeDataplane {
            traffic_flow: Some(control.clone()),
            ..FakeDataplane::default()
        });
        let (_srv, base) = start(dp, None);
        let tf = format!("{base}/rest/ip/traffic-flow");
        let (s, body) = call("GET", &tf, None, None);
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            json_of(&body),
            json!({"enabled": "false", "interfaces": "all", "cache-entries": "4k",
                   "active-flow-timeout": "30m", "inactive-flow-timeout": "15s",
                   "nat-events": "false"})
        );
        // A target, then the export on: the exporter runs.
        let (s, body) = call(
            "PUT",
            &format!("{tf}/target"),
            Some(r#"{"dst-address": "127.0.0.1", "port": 9996, "version": "ipfix"}"#),
            None,
        );
        assert_eq!(s, 201, "{body}");
        assert_eq!(json_of(&body)[".id"], "*1");
        let (s, body) = call(
            "PATCH",
            &tf,
            Some(r#"{"enabled": true, "active-flow-timeout": "1m"}"#),
            None,
        );
        assert_eq!(s, 200, "{body}");
        assert_eq!(json_of(&body)["active-flow-timeout"], "1m");
        assert!(control.settings().enabled);
        assert_eq!(control.counters().unwrap().targets[0].0, "127.0.0.1:9996");
        // Bad values: 400 naming the field, nothing applied.
        assert_error(
            call(
                "PATCH",
                &tf,
                Some(r#"{"enabled": "no", "inactive-flow-timeout": "soon"}"#),
                None,
            ),
            400,
            "inactive-flow-timeout",
        );
        assert!(control.settings().enabled);
        assert_error(
            call(
                "PATCH",
                &format!("{tf}/target/*1"),
                Some(r#"{"port": "70000"}"#),
                None,
            ),
            400,
            "target port",
        );
        assert_error(
            call(
                "PUT",
                &format!("{tf}/target"),
                Some(r#"{"port": "1"}"#),
                None,
            ),
            400,
            "target dst-address",
        );
        assert_error(
            call(
                "POST",
                &format!("{tf}/set"),
                Some(r#"{"colour": "blue"}"#),
                None,
            ),
            400,
            "colour",
        );
        // PATCH and GET one, list, DELETE.
        let (s, body) = call(
            "PATCH",
            &format!("{tf}/target/*1"),
            Some(r#"{"port": "9997"}"#),
            None,
        );
        assert_eq!(
            (s, &json_of(&body)["port"]),
            (200, &json!("9997")),
            "{body}"
        );
        assert_eq!(control.counters().unwrap().targets[0].0, "127.0.0.1:9997");
        let (s, body) = call("GET", &format!("{tf}/target"), None, None);
        assert_eq!(s, 200);
        assert_eq!(json_of(&body).as_array().unwrap().len(), 1);
        // The command forms.
        let (s, body) = call(
            "POST",
            &format!("{tf}/target/add"),
            Some(r#"{"dst-address": "::1"}"#),
            None,
        );
        assert_eq!((s, json_of(&body)), (200, json!({"ret": "*2"})));
        let (s, _) = call(
            "POST",
            &format!("{tf}/target/remove"),
            Some(r#"{".id": "*2,*5"}"#),
            None,
        );
        assert_eq!(s, 404);
        assert_eq!(control.targets().len(), 2, "nothing removed");
        let (s, body) = call(
            "POST",
            &format!("{tf}/target/remove"),
            Some(r#"{".id": "*2"}"#),
            None,
        );
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            call("DELETE", &format!("{tf}/target/*1"), None, None).0,
            204
        );
        assert_eq!(call("GET", &format!("{tf}/target/*1"), None, None).0, 404);
        assert_eq!(call("DELETE", &tf, None, None).0, 405);
        assert!(control.counters().unwrap().targets.is_empty());
    }

    #[test]
    fn without_a_running_dataplane_the_menu_is_unavailable() {
        let (_srv, base) = start(Arc::new(FakeDataplane::default()), None);
        let (s, _) = call("GET", &format!("{base}/rest/ip/traffic-flow"), None, None);
        assert_eq!(s, 503);
    }
}

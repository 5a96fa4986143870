//! The few API calls the benchmark needs besides create and delete:
//! image and flavor ids, the console output, and a server's state.

use super::*;

/// The id of the ACTIVE image named `name` (compute image proxy, 2.1).
pub(super) async fn image_id(api: &Api, name: &str) -> Result<String, String> {
    let a = api
        .call(reqwest::Method::GET, "/images/detail", None, None)
        .await?;
    let v: Value = serde_json::from_slice(&a.body).map_err(|e| format!("GET /images: {e}"))?;
    v["images"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == name && i["status"] == "ACTIVE")
        .and_then(|i| i["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            format!("no ACTIVE image {name:?}: is the test guest built (`bash guest/build.sh`)?")
        })
}

pub(super) async fn flavor_id(api: &Api, name: &str) -> Result<String, String> {
    let v = api.get_json("/flavors", Some(MICROVERSION)).await?;
    v["flavors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == name)
        .and_then(|f| f["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no flavor named {name:?}"))
}

pub(super) async fn console(api: &Api, id: &str) -> Result<Console, String> {
    let a = api
        .call(
            reqwest::Method::POST,
            &format!("/servers/{id}/action"),
            Some(MICROVERSION),
            Some(json!({"os-getConsoleOutput": {}}).to_string()),
        )
        .await?;
    if a.status != 200 {
        return Err(format!(
            "console output of {id}: HTTP {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ));
    }
    let v: Value =
        serde_json::from_slice(&a.body).map_err(|e| format!("console output of {id}: {e}"))?;
    Ok(Console::parse(v["output"].as_str().unwrap_or_default()))
}

/// `(status, task_state, host)` as the admin sees them.
pub(super) async fn state(
    api: &Api,
    id: &str,
) -> Result<(String, Option<String>, String, Value), String> {
    let v = api
        .get_json(&format!("/servers/{id}"), Some(MICROVERSION))
        .await?;
    let s = &v["server"];
    Ok((
        s["status"].as_str().unwrap_or("?").to_string(),
        s["OS-EXT-STS:task_state"].as_str().map(str::to_string),
        s["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or("").to_string(),
        s["fault"].clone(),
    ))
}

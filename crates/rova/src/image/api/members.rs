//! Image sharing (`/v2/images/{id}/members[/{member}]`): the owner offers
//! a shared image to projects and takes the offer back; each project
//! offered it accepts or rejects. The owner (and an admin) sees every
//! member, a member only its own membership. Also the `member` and
//! `members` JSON schemas.

use super::*;
use crate::image::members::{Member, STATUSES};

/// A membership as Glance renders it.
fn member_json(m: &Member) -> Value {
    json!({
        "image_id": m.image_id,
        "member_id": m.member_id,
        "status": m.status,
        "created_at": iso_z(&m.created_at),
        "updated_at": iso_z(&m.updated_at),
        "schema": "/v2/schemas/member",
    })
}

/// The image, which must be shared to have members (Glance's 403).
fn shared_image(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<Image>, Fault> {
    let img = visible_or_404(app, ctx, id)?;
    if img.visibility != "shared" {
        return Err(Fault::forbidden("Only shared images have members."));
    }
    Ok(img)
}

/// Whether the caller may see every member (the owner or an admin).
fn owns(img: &Image, ctx: &Ctx) -> bool {
    ctx.is_admin() || img.owner == ctx.project_id
}

fn no_member(image: &str, member: &str) -> Fault {
    Fault::not_found(format!(
        "{member} not found in the member list of the image {image}."
    ))
}

/// `member`'s membership of `img`, if the caller may see it (the owner
/// and admins see every one, a project its own).
fn seen_membership(app: &App, ctx: &Ctx, img: &Image, member: &str) -> Result<Arc<Member>, Fault> {
    app.images
        .membership(&img.id, member)
        .filter(|m| owns(img, ctx) || m.member_id == ctx.project_id)
        .ok_or_else(|| no_member(&img.id, member))
}

/// The request body as a JSON object (Glance's 400s otherwise).
fn body_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Fault> {
    if body.is_empty() {
        return Err(Fault::bad_request("Body expected in request."));
    }
    let v = crate::http::parse_json(headers, body)?;
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(Fault::bad_request("Body expected in request.")),
    }
}

pub(super) async fn list_members(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    let img = shared_image(&app, &ctx, &id)?;
    let all = owns(&img, &ctx);
    let members: Vec<Value> = app
        .images
        .members_of(&id)
        .iter()
        .filter(|m| all || m.member_id == ctx.project_id)
        .map(|m| member_json(m))
        .collect();
    Ok(ok_json(
        json!({"members": members, "schema": "/v2/schemas/members"}),
    ))
}

pub(super) async fn show_member(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path((id, member)): Path<(String, String)>,
) -> GResult<Response> {
    // Glance answers 404 rather than 403 here, so as not to tell a
    // project about another's membership.
    let img = shared_image(&app, &ctx, &id).map_err(|f| Fault::not_found(f.message))?;
    let m = seen_membership(&app, &ctx, &img, &member)?;
    Ok(ok_json(member_json(&m)))
}

pub(super) async fn create_member(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> GResult<Response> {
    let o = body_object(&headers, &body)?;
    let member = match o.get("member") {
        None => return Err(gerr(400, "Member to be added not specified")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | Some(Value::Null) => {
            return Err(gerr(400, "Member can't be empty"))
        }
        Some(other) => other.to_string(),
    };
    let img = shared_image(&app, &ctx, &id)?;
    if !ctx.may_change(&img.owner) {
        return Err(gerr(
            403,
            format!("Not allowed to create members for image {id}."),
        ));
    }
    let m = app.images.add_member(&id, &member, app.clock.now()).await?;
    Ok(ok_json(member_json(&m)))
}

pub(super) async fn update_member(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path((id, member)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> GResult<Response> {
    let o = body_object(&headers, &body)?;
    let status = match o.get("status") {
        None => return Err(gerr(400, "Status not specified")),
        Some(Value::String(s)) if STATUSES.contains(&s.as_str()) => s.clone(),
        Some(_) => {
            return Err(gerr(
                400,
                "Incorrect request: Status must be \"pending\", \"accepted\" or \"rejected\".",
            ))
        }
    };
    let img = shared_image(&app, &ctx, &id)?;
    seen_membership(&app, &ctx, &img, &member)?;
    // Only the project offered the image decides on the offer.
    if !ctx.may_change(&member) {
        return Err(gerr(
            403,
            format!("Not allowed to update members for image {id}."),
        ));
    }
    let now = app.clock.now();
    let m = app
        .images
        .set_member_status(&id, &member, &status, now, || no_member(&id, &member))
        .await?;
    Ok(ok_json(member_json(&m)))
}

pub(super) async fn delete_member(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path((id, member)): Path<(String, String)>,
) -> GResult<Response> {
    let img = shared_image(&app, &ctx, &id)?;
    seen_membership(&app, &ctx, &img, &member)?;
    if !ctx.may_change(&img.owner) {
        return Err(gerr(
            403,
            format!("Not allowed to delete members for image {id}."),
        ));
    }
    app.images
        .remove_member(&id, &member, || no_member(&id, &member))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn member_schema() -> Value {
    let text = |desc: &str| json!({"type": "string", "description": desc});
    json!({
        "name": "member",
        "properties": {
            "member_id": text("An identifier for the image member (tenantId)"),
            "image_id": {"type": "string", "description": "An identifier for the image",
                "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "created_at": text("Date and time of image member creation"),
            "updated_at": text("Date and time of last modification of image member"),
            "status": {"type": "string", "description": "The status of this image member",
                "enum": STATUSES},
            "schema": {"type": "string", "readOnly": true},
        },
    })
}

pub(super) async fn schema_member(_caller: Caller) -> Response {
    ok_json(member_schema())
}

pub(super) async fn schema_members(_caller: Caller) -> Response {
    ok_json(json!({
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }))
}

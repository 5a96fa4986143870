//! Image tags, the tasks sub-collection, and deactivate / reactivate
//! actions.

use super::*;

pub(super) async fn add_tag(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path((id, tag)): Path<(String, String)>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("modify_image").into());
    }
    if tag.chars().count() > 255 {
        return Err(gerr(
            400,
            format!("Tag '{tag}' is too long (maximum 255 characters)."),
        ));
    }
    let now = app.clock.now();
    app.images
        .update(
            &id,
            || no_image(&id),
            |img| {
                if !img.tags.contains(&tag) {
                    if img.tags.len() >= TAG_QUOTA {
                        return Err(Fault::new(
                            413,
                            format!("Maximum tag count exceeded: the limit is {TAG_QUOTA}"),
                        ));
                    }
                    img.tags.push(tag.clone());
                    img.updated_at = now;
                }
                Ok(())
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn remove_tag(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path((id, tag)): Path<(String, String)>,
) -> GResult<Response> {
    let img = visible_or_404(&app, &ctx, &id)?;
    if !may_modify(&img, &ctx) {
        return Err(not_authorized("modify_image").into());
    }
    let now = app.clock.now();
    app.images
        .update(
            &id,
            || no_image(&id),
            |img| {
                let before = img.tags.len();
                img.tags.retain(|t| *t != tag);
                if img.tags.len() == before {
                    return Err(Fault::not_found(format!("Tag {tag} not found")));
                }
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn image_tasks(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    visible_or_404(&app, &ctx, &id)?;
    Ok(ok_json(json!({"tasks": []})))
}

async fn change_activation(app: &App, ctx: &Ctx, id: &str, deactivate: bool) -> GResult<Response> {
    let action = if deactivate {
        "deactivate"
    } else {
        "reactivate"
    };
    let img = visible_or_404(app, ctx, id)?;
    // Glance's default: an admin, or a member of the owning project.
    let owner = img.owner == ctx.project_id;
    if !(ctx.is_admin() || (ctx.is_member() && owner)) {
        return Err(not_authorized(action).into());
    }
    let now = app.clock.now();
    app.images
        .update(
            id,
            || no_image(id),
            |img| {
                match img.status.as_str() {
                    "active" | "deactivated" => {}
                    other => {
                        return Err(Fault::bad_request(format!(
                            "Not allowed to {action} image in status '{other}'"
                        )))
                    }
                }
                img.status = if deactivate { "deactivated" } else { "active" }.into();
                img.updated_at = now;
                Ok(())
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn deactivate(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    change_activation(&app, &ctx, &id, true).await
}

pub(super) async fn reactivate(
    State(app): State<Arc<App>>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
) -> GResult<Response> {
    change_activation(&app, &ctx, &id, false).await
}

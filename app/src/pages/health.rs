//! A peer gateway's health badge (Gateways tab) and card (its detail page).

use leptos::prelude::*;

use crate::federation::GatewayHealth;

/// `reachable` / `unreachable` / `auth failed` / `unknown`, coloured; the last error as
/// its tooltip.
#[component]
pub fn HealthBadge(health: GatewayHealth) -> impl IntoView {
    let status = health.status;
    view! {
        <span class=format!("badge health health-{}", status.as_str()) data-status=status.as_str()
            title=health.last_error.unwrap_or_default()>
            {status.label()}
        </span>
    }
}

/// The detail page's card: status, when it last answered and was checked, the last
/// error and what the last discovery found.
#[component]
pub fn HealthCard(health: GatewayHealth) -> impl IntoView {
    let when = |t: Option<crate::entities::Timestamp>| {
        t.map_or_else(
            || "never".to_owned(),
            |t| t.0.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let found = format!(
        "{} tools, {} prompts, {} resources",
        health.tools, health.prompts, health.resources
    );
    let (last_seen, checked_at) = (when(health.last_seen), when(health.checked_at));
    let error = health.last_error.clone();
    view! {
        <section class="card gateway-health">
            <h2>"Health " <HealthBadge health/></h2>
            <dl>
                <dt>"Last seen"</dt><dd class="last-seen">{last_seen}</dd>
                <dt>"Last checked"</dt><dd class="checked-at">{checked_at}</dd>
                <dt>"Discovered"</dt><dd class="discovered">{found}</dd>
                {error.map(|e| view! { <dt>"Last error"</dt><dd class="last-error">{e}</dd> })}
            </dl>
        </section>
    }
}

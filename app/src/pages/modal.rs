//! A modal dialog on the native `<dialog>` element: `showModal()` makes the rest of the
//! page inert (focus stays inside) and Escape closes it.

use leptos::{html, prelude::*};

#[component]
pub fn Modal(title: String, on_close: Callback<()>, children: Children) -> impl IntoView {
    let dialog = NodeRef::<html::Dialog>::new();
    Effect::new(move |_| {
        if let Some(d) = dialog.get()
            && !d.open()
        {
            let _ = d.show_modal();
        }
    });
    let heading = format!("modal-{}", title.to_lowercase().replace(' ', "-"));
    let labelled_by = heading.clone();
    view! {
        <dialog node_ref=dialog class="modal" aria-labelledby=labelled_by
            on:cancel=move |ev: web_sys::Event| {
                ev.prevent_default();
                on_close.run(());
            }>
            <header class="modal-header">
                <h2 id=heading>{title}</h2>
                <button type="button" class="icon close" aria-label="Close" on:click=move |_| on_close.run(())>
                    "×"
                </button>
            </header>
            <div class="modal-body">{children()}</div>
        </dialog>
    }
}

//! The queue both annotation pages (labels and spans) walk: the item on screen, one item
//! fetched ahead so Enter shows the next at once, and the ids answered recently, which the
//! server is told to leave out until their answers have landed.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{get_item, next_item, reset_skips, skip_item};
use crate::components::error_text;
use crate::wire::ItemView;

/// How many recently passed items the page asks the server not to hand out again while their
/// submits may still be in flight.
const RECENT: usize = 16;

/// Milliseconds since the epoch in the browser (0 while rendering on the server), for the time
/// an annotator spends on an item.
pub(crate) fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

/// The page's signals the queue reads and writes (all `Copy` handles).
#[derive(Clone, Copy)]
pub(crate) struct ItemQueue {
    pub pid: u64,
    pub current: RwSignal<Option<ItemView>>,
    pub prefetched: RwSignal<Option<ItemView>>,
    pub recent: RwSignal<Vec<String>>,
    pub loading: RwSignal<bool>,
    pub error: RwSignal<Option<String>>,
    /// Requests (submits, skips) still on their way.
    pub pending: RwSignal<u32>,
    /// Items answered on this page, for going back.
    pub history: RwSignal<Vec<String>>,
}

impl ItemQueue {
    /// The ids the server must not hand out now: recently answered, and the one on screen.
    fn exclusions(self) -> Vec<String> {
        let mut ids = self.recent.get_untracked();
        ids.extend(self.current.get_untracked().map(|i| i.id));
        ids
    }

    /// An item already on screen or answered on this page. A prefetch that was in flight while
    /// the page fetched the same item another way (after a fast run of submits) comes back
    /// stale: it must not be shown a second time.
    fn seen(self, item: &ItemView) -> bool {
        self.recent.with_untracked(|r| r.contains(&item.id))
            || self
                .current
                .with_untracked(|c| c.as_ref().is_some_and(|c| c.id == item.id))
    }

    /// Fetches the item after the current one into the prefetch slot.
    pub fn refill_prefetch(self) {
        spawn_local(async move {
            match next_item(self.pid, self.exclusions()).await {
                // Going back may have put the shown item into the prefetch slot meanwhile:
                // that one comes next, and the fetched item returns later (it stays ours).
                Ok(item) => self.prefetched.update(|p| {
                    if p.is_none() && !item.as_ref().is_some_and(|i| self.seen(i)) {
                        *p = item;
                    }
                }),
                Err(e) => self.error.set(Some(error_text(&e))),
            }
        });
    }

    /// Shows the next item with `show`: the prefetched one at once, else one fetched now
    /// (`None` when the queue is finished).
    pub fn advance(self, show: impl Fn(Option<ItemView>) + Copy + 'static) {
        let ready = self
            .prefetched
            .try_update(Option::take)
            .flatten()
            .filter(|item| !self.seen(item));
        if let Some(item) = ready {
            show(Some(item));
            self.refill_prefetch();
        } else {
            self.loading.set(true);
            spawn_local(async move {
                match next_item(self.pid, self.exclusions()).await {
                    Ok(item) => {
                        let found = item.is_some();
                        show(item);
                        if found {
                            self.refill_prefetch();
                        }
                    }
                    Err(e) => {
                        self.loading.set(false);
                        self.error.set(Some(error_text(&e)));
                    }
                }
            });
        }
    }

    /// Records an id just answered or skipped, keeping the last [`RECENT`].
    pub fn remember(self, id: String) {
        self.recent.update(|r| {
            r.push(id);
            if r.len() > RECENT {
                r.remove(0);
            }
        });
    }

    /// Skips the item on screen (the server records it) and shows the next.
    pub fn skip(self, show: impl Fn(Option<ItemView>) + Copy + 'static) {
        let Some(item) = self.current.get_untracked() else {
            return;
        };
        self.error.set(None);
        self.remember(item.id.clone());
        self.pending.update(|n| *n += 1);
        spawn_local(async move {
            if let Err(e) = skip_item(self.pid, item.id.clone()).await {
                self.error.set(Some(error_text(&e)));
            }
            self.pending.update(|n| *n -= 1);
        });
        self.advance(show);
    }

    /// Goes back to the last item answered on this page; the one on screen comes next again.
    /// `local_answer` puts the answer given on this page into the item (the server may not
    /// have it yet).
    pub fn back(
        self,
        show: impl Fn(Option<ItemView>) + Copy + 'static,
        local_answer: impl Fn(&mut ItemView) + Copy + 'static,
    ) {
        let Some(previous) = self.history.try_update(Vec::pop).flatten() else {
            return;
        };
        if let Some(shown) = self.current.get_untracked() {
            self.prefetched.set(Some(shown));
        }
        self.loading.set(true);
        spawn_local(async move {
            match get_item(self.pid, previous).await {
                Ok(mut item) => {
                    local_answer(&mut item);
                    show(Some(item));
                }
                Err(e) => {
                    self.loading.set(false);
                    self.error.set(Some(error_text(&e)));
                }
            }
        });
    }

    /// Puts the caller's skipped items back into the queue and shows the next item.
    pub fn bring_back_skipped(self, show: impl Fn(Option<ItemView>) + Copy + 'static) {
        spawn_local(async move {
            match reset_skips(self.pid).await {
                Ok(_) => {
                    self.recent.set(Vec::new());
                    self.advance(show);
                }
                Err(e) => self.error.set(Some(error_text(&e))),
            }
        });
    }
}

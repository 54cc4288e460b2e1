// The page's /sync filter (issue 29): what a browser costs on the wire. The page shows no presence, so none is asked
// for; of the ephemeral events only typing and read receipts (what it renders); members are lazy-loaded in state and
// timeline; incremental syncs carry at most 20 events per room (a longer absence comes back as a gap the room view
// reads on scroll). The load generator syncs with this very definition (tools/loadtest/src/sync.rs checks that it
// is the same JSON); measured in benches/load/.
import { Filter } from "matrix-js-sdk";

// JSON between the markers: tools/loadtest reads it.
// sync-filter:begin
export const SYNC_FILTER = {
  "presence": { "not_types": ["*"] },
  "room": {
    "timeline": { "limit": 20, "lazy_load_members": true, "unread_thread_notifications": true },
    "state": { "lazy_load_members": true },
    "ephemeral": { "types": ["m.typing", "m.receipt"] }
  }
};
// sync-filter:end

/** The filter object matrix-js-sdk uploads once and syncs with (its first sync still uses `initialSyncLimit`). */
export function syncFilter(userId) {
  const filter = new Filter(userId);
  filter.setDefinition(structuredClone(SYNC_FILTER));
  return filter;
}

// @openmeet/chat-client: what OpenMeet's frontend needs to chat through the platform. Writes go through the API
// (Api, Outbox, Writes), real time comes straight from the homeserver with a Matrix session the API hands out and
// this package renews (MatrixSession, whose fetch is given to matrix-js-sdk), synced with the page's filter.
// Typings: index.d.ts. Tests: client/test (node --test, no browser).

export { Api, ApiError, NetworkError, roomPath } from "./api.js";
export { Outbox } from "./outbox.js";
export { MatrixSession } from "./session.js";
// The /sync filter stays at the path tools/loadtest reads (issue 29); exported here for the frontend.
export { SYNC_FILTER, syncFilter } from "../src/sync-filter.js";
export { API_UPLOAD_LIMIT, UploadError, uploadDirect, uploadLimit } from "./upload.js";
export { Writes, directContent } from "./writes.js";

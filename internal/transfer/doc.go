// Package transfer moves enrollments and enrollment groups between a DPS
// service API (Usher's or Azure's) and JSON Lines files, or between two
// services, through one streaming pipeline:
//
//   - Scan reads a service page by page (query + continuation tokens) and,
//     when keys are wanted, fetches them through attestationmechanism with a
//     few requests in flight, keeping the page's order.
//   - Target.Apply compares each record with what the target holds (create
//     when missing, update when different, leave it alone when equal) and
//     writes the changes in the API's bulk batches of ten (mode "update",
//     Azure's create-or-update), reporting each record's outcome and, in
//     order, how far a chunk is settled, so that callers can checkpoint.
//   - Every call is retried on 429 and 5xx answers after the Retry-After
//     they carry, or with exponential backoff when they carry none.
//
// Export (Scan → lines), Import (lines → Apply) and Migrate (Scan → Apply
// with a checkpoint file) are built from these; memory holds one page or
// chunk at a time, whatever the number of records.
//
// The line format is documented in docs/migration.md and in Record.
//
// Reference: Azure DPS service REST API 2021-10-01 (dps-protocol.md §8).
package transfer

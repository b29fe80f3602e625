// Package storetest is the contract every store.Store backend must pass.
//
// A backend's own test calls Run with a function that opens a fresh, empty
// store; Run then exercises every method of store.Store, including the
// concurrency guarantees (optimistic versioning under contention, parallel
// writers without spurious lock errors). The suite only uses the interface,
// so it cannot depend on a backend's SQL dialect or storage format.
//
// # Time precision
//
// Backends store times in UTC with microsecond precision (TimePrecision):
// PostgreSQL's timestamptz cannot hold more, and SQLite integer columns are
// kept to the same unit so both behave identically. The suite therefore
// expects every time read back to be in UTC and to Equal the written value
// truncated to TimePrecision (time.Time.Truncate). The zero time round-trips
// as the zero time ("absent").
package storetest

// Package config owns the CA's configuration file: a strict JSON document
// (unknown fields and missing required fields are errors that name the
// field), with durations written as strings ("24h", "90d") and file paths
// relative to the file's own directory.
package config

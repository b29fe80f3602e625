package policy

import _ "embed"

// InputSchema is the JSON Schema (draft 7) of the input document, version
// InputVersion. docs/policy.md describes the same document in prose.
//
//go:embed schema/input.schema.json
var InputSchema []byte

package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// serverGCPercent is the garbage collector's target (GOGC) for the
// long-running commands, ca and ra, when the environment does not set
// GOGC. The live heap of a CA is small (tens of megabytes) and issuance
// allocates a lot per request (JSON, ASN.1, policy evaluation), so Go's
// default of 100 makes it collect several times per hundred issuances.
// At 400, scripts/bench-acme.sh measured 0.35-0.5 ms less server CPU per
// issuance (about 8 %) for 67 -> 91 MB peak RSS at 32 clients; see
// docs/decisions.md "Garbage collector".
const serverGCPercent = 400

// tuneGC applies serverGCPercent unless GOGC is set (an operator's
// choice, GOGC=off included, wins).
func tuneGC(log *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(serverGCPercent)
	log.Debug("garbage collector target set", "gogc", serverGCPercent)
}

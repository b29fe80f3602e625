// Package nonce issues and redeems the anti-replay nonces of RFC 8555 §6.5.
//
// Memory keeps its state in the process: nonces are self-authenticating (an
// AES-encrypted counter with built-in redundancy, so a forged or garbled
// nonce is refused without a lookup), and redemption is tracked in a bitmap
// over a sliding window of the most recently issued counters. A restart
// changes the key, which invalidates every outstanding nonce; clients then
// get badNonce and retry with the fresh nonce sent along with the error,
// as RFC 8555 §6.5 intends.
//
// Several nodes each run their own Memory with a distinct prefix, so a load
// balancer (or the node itself) can tell from the nonce which node issued
// it. A node that receives a nonce with another node's prefix refuses it as
// badNonce; deployments with several nodes route requests by that prefix,
// or use Shared instead.
//
// Shared serves several nodes on one database: nonces are authenticated by
// an HMAC under a key stored once in the database and carry their issue
// time, so issuing needs no database access, and redemption is one INSERT
// whose primary key refuses a second use on any node.
package nonce

// Package forwarded parses and writes the headers through which HTTP
// proxies describe the client: Forwarded (RFC 7239) and the de facto
// X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto. It is internal
// to zhost and imports nothing of it, so every layer that meets these
// headers shares one parser: the sessions (layer 7) read the scheme the
// browser used to decide on Secure cookies; the balancer (layer 8) writes
// the headers; the app (layer 8) reads them to build absolute URLs that
// point at the public front end rather than at the node itself.
//
// Headers are believed only from trusted peers, named by address ranges:
//
//	trust, err := forwarded.ParseTrust([]string{"127.0.0.1/32", "10.0.0.0/8"})
//	if err != nil { ... }
//	o := trust.Resolve(r) // r from a handler
//	location := o.BaseURL() + "/docs/a" // "https://example.org/docs/a"
//
// Resolve walks the chain of hops from the nearest one and stops at the
// first hop it does not trust, so a browser that sends its own Forwarded
// header through a trusting front end cannot choose the host or scheme that
// the application sees.
package forwarded

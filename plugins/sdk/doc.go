// Package sdk is the zhost plugin contract, layer 3 of zhost: everything a
// storage backend or mount function written in its own repository needs,
// and the host-side adapters host/pluginhost uses to talk to it.
//
// A plugin is a hashicorp/go-plugin subprocess speaking gRPC (the protocol
// is plugins/proto/zhost_plugin.proto). This package holds:
//
//   - the handshake (Handshake: a magic cookie that never changes) and the
//     versioned plugin sets (ServerPluginSets, ClientPluginSets; protocol
//     1, structured so a protocol 2 can be negotiated later);
//   - the Go interfaces of the two plugin kinds: Backend (a storage type:
//     its config Schema and Open, returning a storage.Storage) and
//     MountFunction (its ArgsSchema and Resolve, returning a MountTarget);
//   - Plugin, what a binary serves (name, version, backends, functions,
//     settings), and Describe;
//   - Serve, which a plugin's main calls, and Logger, its stderr logger;
//   - Client and RemoteStorage, the host side: storage.Storage over gRPC,
//     with sentinel errors (storage.ErrConflict, ErrNotFound, ...) keeping
//     their identity across the boundary and a conflict coming back as a
//     *storage.ConflictError naming every oid.
//
// A plugin's main is a few lines:
//
//	func main() {
//		sdk.Serve(&sdk.Plugin{
//			Name:     "custom-storage",
//			Version:  "1.0.0",
//			Backends: map[string]sdk.Backend{"jsonl": backend{}},
//		})
//	}
//
// Plugins log through Logger (hclog JSON on stderr; the host shows each
// line under the plugin's name at its level) and never write to stdout,
// which carries the handshake. Serve closes every storage the host left
// open when the host shuts the plugin down, exits or is killed.
//
// Messages up to MaxMessageSize (512 MiB) pass; gRPC's 4 MiB default is
// raised on both sides. Txn.Store calls are batched into few messages;
// Iterate streams one message per transaction. The hot calls (loads,
// stores, votes, commits, finishes, aborts) share one persistent gRPC
// stream per plugin connection (Backend.Calls, records packed in one
// buffer), falling back to unary RPCs for a plugin built before it; a
// plugin built with this package serves both without doing anything.
//
// A backend's Txn is called as host/storage promises: one call at a time,
// in the order the calls arrived (on the Calls stream, stream order),
// never two at once, also when the host gives up on a call (its context
// ended) and sends Abort while the call still runs in the backend. That
// Abort cancels the running call's context (a Vote waiting for the
// commit lock then returns ErrCommitLockTimeout or the context's error),
// waits for it to return, then calls the Txn's Abort; calls of the
// transaction queued behind it fail with storage.ErrClosed without
// reaching the backend. Finish is never canceled. Closing a storage (or
// the plugin shutting down) interrupts its transactions' calls the same
// way and calls the backend's Close, which aborts them, once they (and
// any Abort waiting for them) returned. So a backend needs no lock of its
// own around a Txn, but its Store and Vote should honour ctx for an
// Abort or a Close to be prompt. Different transactions, and the Storage
// methods, still run concurrently.
//
// See docs/plugins.md for a walk-through, and examples/custom-mount and
// examples/custom-storage for complete plugins.
package sdk

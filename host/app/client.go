package app

import (
	"context"

	"github.com/zhostdb/zhost/host/client"
)

// ClientStatus returns an Options.Status function that reports a
// host/client connection: the server's address and connection state, and
// the client's record cache.
func ClientStatus(c *client.Client) func(ctx context.Context) NodeStatus {
	return func(context.Context) NodeStatus {
		cs := c.State()
		st := c.Stats()
		state := "disconnected"
		if cs.Connected {
			state = "connected"
		}
		hits, misses := uint64(max(st.Hits, 0)), uint64(max(st.Misses, 0))
		return NodeStatus{
			Server: ServerStatus{Address: cs.Addr, State: state, Connected: cs.Connected, Error: cs.LastError},
			Cache: &CacheStatus{
				Bytes: st.Bytes, Limit: st.MaxBytes, Entries: st.Objects,
				Hits: hits, Misses: misses, HitRate: HitRate(hits, misses),
			},
		}
	}
}

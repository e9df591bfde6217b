// Package clustertest holds the in-process cluster test of the HTTP layer
// (layer 8 of zhost): a real storage server (host/server) over in-memory
// partitions, app nodes on real host/client connections with host/db and
// host/session, and the real balancer in front, all on 127.0.0.1. It has
// no code outside its tests; it lives apart from host/app so that the
// app's unit tests do not depend on the network layers.
package clustertest

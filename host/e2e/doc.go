// Package e2e holds the end-to-end tests of zhost: they build the real
// binary, run `zhost run` on examples/cluster.hcl (with free ports) and
// talk to the cluster over HTTP like a browser would, killing processes
// along the way. It has no non-test code.
package e2e

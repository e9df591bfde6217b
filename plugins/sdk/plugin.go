package sdk

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/zhostdb/zhost/plugins/proto"
)

// grpcPlugin binds the zhost protocol to go-plugin. On the plugin side impl
// is served; on the host side name labels the dispensed Client.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl   *Plugin
	logger hclog.Logger
	name   string
	srv    *Server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.impl == nil {
		return fmt.Errorf("zhost plugin: no implementation to serve")
	}
	if p.srv == nil {
		p.srv = newServer(p.impl, p.logger)
	}
	RegisterServices(s, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewClient(p.name, ctx, conn), nil
}

// RegisterServices registers the zhost services of srv on s. It is
// exported for in-process transports (tests, benchmarks) through NewServer.
func RegisterServices(s *grpc.Server, srv *Server) {
	pb.RegisterPluginServer(s, srv)
	pb.RegisterBackendServer(s, srv)
	pb.RegisterMountServer(s, srv)
}

// NewServer returns the gRPC service implementation of p. Serve uses it;
// it is exported so a plugin's own tests can serve p on a plain gRPC
// server without a subprocess. Call CloseAll when done to close every storage
// the host left open.
func NewServer(p *Plugin, logger hclog.Logger) *Server { return newServer(p, logger) }

// CloseAll closes every storage still open in the server.
func (s *Server) CloseAll() { s.closeAll() }

// ServerPluginSets returns the versioned plugin sets a plugin serves.
// Protocol 1 is the only version so far; protocol 2 would be added as a
// second entry, and go-plugin serves the newest one the host also speaks.
func ServerPluginSets(p *Plugin, srv *Server) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginKey: &grpcPlugin{impl: p, srv: srv}},
	}
}

// ClientPluginSets returns the versioned plugin sets the host accepts from
// the plugin called name. Dispensing PluginKey yields a *Client.
func ClientPluginSets(name string) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginKey: &grpcPlugin{name: name}},
	}
}

// Flow-control windows and socket buffers of the plugin connection. The
// connection is a private local socket between two processes of one host,
// so HTTP/2 flow control only adds round trips: with gRPC's default 64 KiB
// window (grown slowly by its bandwidth estimator) a 200 kB batch of
// stores waits for window updates from the plugin process, each a
// scheduling delay on a busy machine. A window as large as a whole batch
// sends it at once; larger buffers write it in fewer syscalls. The memory
// is only used while data is in flight on the host's one connection.
const (
	grpcStreamWindow = 16 << 20
	grpcConnWindow   = 32 << 20
	grpcBufferSize   = 256 << 10
	// grpcStreamWorkers matches the machine's cores the host is sized
	// for; more only add idle goroutines.
	grpcStreamWorkers = 2
)

// GRPCServerOptions are the options both Serve and in-process transports
// use: gRPC's 4 MiB default message limit raised to MaxMessageSize, and
// windows and buffers sized for a local connection.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.InitialWindowSize(grpcStreamWindow),
		grpc.InitialConnWindowSize(grpcConnWindow),
		grpc.WriteBufferSize(grpcBufferSize),
		grpc.ReadBufferSize(grpcBufferSize),
		// Calls run on a small pool of reused goroutines (whose stacks
		// have already grown) instead of a new goroutine each; when all
		// are busy gRPC starts a goroutine as before, so a call waiting
		// for the commit lock never holds up others. About 10% off a
		// call's latency in BenchmarkHopMix.
		grpc.NumStreamWorkers(grpcStreamWorkers),
	}
}

// GRPCDialOptions are the dial options the host uses for a plugin
// connection, matching GRPCServerOptions. No compressor is set: records
// cross a local socket, where compressing costs more than it saves.
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithInitialWindowSize(grpcStreamWindow),
		grpc.WithInitialConnWindowSize(grpcConnWindow),
		grpc.WithWriteBufferSize(grpcBufferSize),
		grpc.WithReadBufferSize(grpcBufferSize),
	}
}

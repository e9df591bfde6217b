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

// GRPCServerOptions are the options both Serve and in-process transports
// use: gRPC's 4 MiB default message limit raised to MaxMessageSize.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.WriteBufferSize(writeBuffer),
		grpc.ReadBufferSize(readBuffer),
	}
}

// GRPCDialOptions are the dial options the host uses for a plugin
// connection, matching GRPCServerOptions.
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithWriteBufferSize(writeBuffer),
		grpc.WithReadBufferSize(readBuffer),
	}
}

// The plugin connection carries batches of hundreds of kilobytes (a
// 1000-record Vote or Commit is about 200 KB). With gRPC's defaults (a
// 64 KiB window that its bandwidth estimator grows only over time, and
// 32 KiB write and read buffers) such a message goes out in several
// writes, each waking the plugin's reader, and stalls on window updates,
// each a round trip between the processes. A window larger than any
// batch and buffers the size of one let a batch go out in one write:
// 1000-object add and update through a plugin 1.2x the objects/s
// (zhost bench, interleaved A/B; docs/performance.md). The windows are
// credit, not memory: gRPC allocates per message received.
const (
	streamWindow = 8 << 20
	connWindow   = 16 << 20
	writeBuffer  = 512 << 10
	readBuffer   = 256 << 10
)

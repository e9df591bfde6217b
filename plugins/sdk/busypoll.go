package sdk

import (
	"context"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/zhostdb/zhost/internal/busypoll"
)

// pollCreds are insecure transport credentials (the plugin connection is
// a private Unix socket) whose handshake wraps the connection so that its
// reads busy-poll for window before parking.
type pollCreds struct {
	credentials.TransportCredentials
	window time.Duration
}

func newPollCreds(window time.Duration) credentials.TransportCredentials {
	return pollCreds{TransportCredentials: insecure.NewCredentials(), window: window}
}

func (c pollCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, err
	}
	return busypoll.Wrap(conn, c.window), info, nil
}

func (c pollCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	return busypoll.Wrap(conn, c.window), info, nil
}

func (c pollCreds) Clone() credentials.TransportCredentials { return c }

// GRPCDialOptionsPoll is GRPCDialOptions with reads that busy-poll. Its
// transport credentials are plain ones, replacing go-plugin's: use it
// only for a client without TLSConfig or AutoMTLS (zhost's host).
func GRPCDialOptionsPoll(window time.Duration) []grpc.DialOption {
	opts := GRPCDialOptions()
	if window > 0 {
		opts = append(opts, grpc.WithTransportCredentials(newPollCreds(window)))
	}
	return opts
}

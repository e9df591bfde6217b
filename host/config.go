package host

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	hcl2 "github.com/hashicorp/hcl/v2"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/pluginhost"
	"github.com/zhostdb/zhost/plugins/builtin"
)

// ParseOptions returns the hcl.Options that know the built-in storage
// types and mount functions and, when mgr is not nil, ask every external
// plugin for its schemas (starting it). `zhost validate`, `zhost run` and
// `zhost plugins` all load configs this way, so they agree on what is
// valid.
func ParseOptions(ctx context.Context, mgr *pluginhost.Manager) hcl.Options {
	o := hcl.Options{
		StorageTypes:   builtin.StorageTypes(),
		MountFunctions: builtin.MountFunctions(),
		CheckMountArg:  builtin.CheckArg,
	}
	if mgr != nil {
		o.PluginSchemas = mgr.PluginSchemas(ctx)
	}
	return o
}

// LoadConfig loads and checks path like `zhost validate` does.
func LoadConfig(ctx context.Context, path string, mgr *pluginhost.Manager) (*hcl.Config, hcl2.Diagnostics) {
	return hcl.Load(path, ParseOptions(ctx, mgr))
}

// serverTLS builds the server's tls.Config from its tls block.
func serverTLS(t *hcl.ServerTLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server tls: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pool, err := certPool(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server tls: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if t.RequireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c, nil
}

// clientTLS builds a client's tls.Config from its tls block.
func clientTLS(t *hcl.ClientTLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := certPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("client tls: %w", err)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client tls: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func certPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

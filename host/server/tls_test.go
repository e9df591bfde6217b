package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/server"
)

type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
	rogue  tls.Certificate // signed by another CA
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newPKI(t *testing.T) testPKI {
	ca, caKey := newCA(t, "zhost test CA")
	other, otherKey := newCA(t, "rogue CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		pool:   pool,
		server: leaf(t, ca, caKey, "server", x509.ExtKeyUsageServerAuth),
		client: leaf(t, ca, caKey, "app1", x509.ExtKeyUsageClientAuth),
		rogue:  leaf(t, other, otherKey, "app1", x509.ExtKeyUsageClientAuth),
	}
}

func tryOpen(t *testing.T, addr string, cfg *tls.Config) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.Open(ctx, client.Options{Addr: addr, Partition: "main", TLS: cfg, ConnectTimeout: 2 * time.Second})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestTLSServerOnly(t *testing.T) {
	pki := newPKI(t)
	_, addr, _ := start(t, func(o *server.Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
		o.FrameTimeout = time.Second
	})
	c, err := tryOpen(t, addr, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	healthy(t, c)
	if _, err := tryOpen(t, addr, nil); err == nil {
		t.Fatal("plain-text client accepted by a TLS server")
	}
	if _, err := tryOpen(t, addr, &tls.Config{}); err == nil {
		t.Fatal("client accepted a server certificate it cannot verify")
	}
}

func TestTLSClientCertificates(t *testing.T) {
	pki := newPKI(t)
	_, addr, _ := start(t, func(o *server.Options) {
		o.TLS = &tls.Config{
			Certificates: []tls.Certificate{pki.server},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pki.pool,
			MinVersion:   tls.VersionTLS13,
		}
	})
	c, err := tryOpen(t, addr, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}})
	if err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	healthy(t, c)
	if _, err := tryOpen(t, addr, &tls.Config{RootCAs: pki.pool}); err == nil {
		t.Fatal("client without a certificate accepted")
	}
	if _, err := tryOpen(t, addr, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.rogue}}); err == nil {
		t.Fatal("client with a certificate from another CA accepted")
	}
}

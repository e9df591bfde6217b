package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// memBackend serves memstorage, the contract's in-memory implementation,
// so the adapters are tested on both sides of a real gRPC connection
// without a subprocess.
type memBackend struct{}

func (memBackend) Schema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{{Name: "read_only", Type: hcl.TypeBool, Default: false}}}
}

func (memBackend) Open(_ context.Context, _ string, cfg hcl.Values) (storage.Storage, error) {
	ro, _ := cfg["read_only"].(bool)
	return memstorage.New(memstorage.Options{ReadOnly: ro}), nil
}

type pickFunction struct{}

func (pickFunction) ArgsSchema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "partition", Type: hcl.TypeString, Required: true},
		{Name: "tags", Type: hcl.TypeStringList},
	}}
}

func (pickFunction) Resolve(_ context.Context, req MountRequest) (MountTarget, error) {
	p := req.Args["partition"].(string)
	if p == "forbidden" {
		return MountTarget{}, fmt.Errorf("partition %q is not allowed here: %w", p, storage.ErrInvalid)
	}
	return MountTarget{Partition: p, Folder: strings.TrimPrefix(req.Path, "/")}, nil
}

func testPlugin() *Plugin {
	return &Plugin{
		Name:      "test",
		Version:   "1.2.3",
		Backends:  map[string]Backend{"memory": memBackend{}},
		Functions: map[string]MountFunction{"pick": pickFunction{}},
	}
}

// serveInProcess serves p on an in-memory gRPC connection and returns the
// host-side client; done is canceled to simulate the process exiting.
func serveInProcess(t testing.TB, p *Plugin) (*Client, context.CancelFunc) {
	return serveWith(t, p, p.Name, nil)
}

// serveWith serves p like serveInProcess; backend, if set, makes the
// Backend service around the plugin's Server (an old plugin, a stuck
// one), and the client is called name.
func serveWith(t testing.TB, p *Plugin, name string, backend func(*Server) pb.BackendServer) (*Client, context.CancelFunc) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(GRPCServerOptions()...)
	srv := NewServer(p, nil)
	if backend == nil {
		RegisterServices(gs, srv)
	} else {
		pb.RegisterPluginServer(gs, srv)
		pb.RegisterBackendServer(gs, backend(srv))
	}
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///plugin",
		append(GRPCDialOptions(),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = conn.Close()
		gs.Stop()
		srv.CloseAll()
	})
	return NewClient(name, done, conn), cancel
}

func TestConformanceOverGRPC(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			return c.Open(context.Background(), "memory", "main", nil)
		},
	})
}

func TestDescribe(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "test" || d.Version != "1.2.3" || d.ProtocolVersion != ProtocolVersion {
		t.Fatalf("description = %+v", d)
	}
	b, ok := d.Backend("memory")
	if !ok || len(b.Schema.Attributes) != 1 || b.Schema.Attributes[0].Default != false || b.Schema.Attributes[0].Type != hcl.TypeBool {
		t.Fatalf("backend memory = %+v, %v", b, ok)
	}
	f, ok := d.Function("pick")
	if !ok || len(f.Args.Attributes) != 2 || !f.Args.Attributes[0].Required {
		t.Fatalf("function pick = %+v, %v", f, ok)
	}
	if k := d.Kinds(); len(k) != 2 || k[0] != KindBackend || k[1] != KindMount {
		t.Fatalf("kinds = %v", k)
	}
}

func TestResolve(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	got, err := c.Resolve(ctx, MountRequest{Function: "pick", Path: "/sessions", Args: map[string]any{"partition": "sessiondata", "tags": []string{"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got != (MountTarget{Partition: "sessiondata", Folder: "sessions"}) {
		t.Fatalf("target = %+v", got)
	}
	for _, tc := range []struct {
		name string
		req  MountRequest
		want string
	}{
		{"missing", MountRequest{Function: "pick", Args: map[string]any{}}, `missing required arg "partition"`},
		{"type", MountRequest{Function: "pick", Args: map[string]any{"partition": 3}}, `arg "partition": want a string, got a number`},
		{"unknown", MountRequest{Function: "pick", Args: map[string]any{"partition": "x", "colour": "red"}}, `unknown arg "colour"`},
		{"refused", MountRequest{Function: "pick", Args: map[string]any{"partition": "forbidden"}}, `partition "forbidden" is not allowed here`},
		{"nofunc", MountRequest{Function: "nope"}, `unknown mount function "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Resolve(ctx, tc.req)
			if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "test"`) {
				t.Fatalf("error = %v; want ErrInvalid mentioning %q and the plugin", err, tc.want)
			}
		})
	}
}

func TestSentinelsCrossTheBoundary(t *testing.T) {
	ctx := context.Background()
	for _, s := range sentinels {
		in := fmt.Errorf("backend: op: %w", s.err)
		out := fromStatus(ctx, "p", "op", toStatus(in), true)
		if !errors.Is(out, s.err) {
			t.Errorf("%v: lost identity: %v", s.err, out)
		}
		for _, other := range sentinels {
			if other.err != s.err && errors.Is(out, other.err) {
				t.Errorf("%v also matches %v", s.err, other.err)
			}
		}
		if !strings.Contains(out.Error(), `plugin "p"`) || !strings.Contains(out.Error(), in.Error()) {
			t.Errorf("message %q lacks the plugin or the original", out)
		}
	}
	// A commit lock timeout matches the sentinel and the context error.
	lockErr := fmt.Errorf("vote: %w", errors.Join(storage.ErrCommitLockTimeout, context.DeadlineExceeded))
	out := fromStatus(ctx, "p", "vote", toStatus(lockErr), true)
	if !errors.Is(out, storage.ErrCommitLockTimeout) || !errors.Is(out, context.DeadlineExceeded) {
		t.Errorf("commit lock timeout: %v", out)
	}
	// A plain error stays a plain error.
	out = fromStatus(ctx, "p", "op", toStatus(errors.New("disk on fire")), true)
	for _, s := range sentinels {
		if errors.Is(out, s.err) {
			t.Errorf("plain error matches %v", s.err)
		}
	}
	if !strings.Contains(out.Error(), "disk on fire") {
		t.Errorf("plain error message lost: %v", out)
	}
}

func TestConflictKeepsEveryOid(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	oids, err := st.NewOids(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	recs := []storage.Record{{Oid: storage.RootOid, Data: []byte("r"), Refs: oids}}
	for _, o := range oids {
		recs = append(recs, storage.Record{Oid: o, Data: []byte("v1")})
	}
	if _, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...); err != nil {
		t.Fatal(err)
	}
	// Store all three again based on ZeroTid: every one conflicts.
	var again []storage.Record
	for _, o := range oids {
		again = append(again, storage.Record{Oid: o, Data: []byte("v2")})
	}
	_, err = storagetest.Commit(ctx, st, storage.TxMeta{}, again...)
	var ce *storage.ConflictError
	if !errors.Is(err, storage.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("want a *ConflictError, got %v", err)
	}
	if got := ce.Oids(); len(got) != 3 || got[0] != oids[0] || got[2] != oids[2] {
		t.Fatalf("conflicting oids = %v, want %v", got, oids)
	}
	for _, cf := range ce.Conflicts {
		if cf.Expected != 0 || cf.Actual == 0 {
			t.Fatalf("conflict detail %+v", cf)
		}
	}
}

// TestLargeRecord pushes a 64 MiB record both ways, far over gRPC's 4 MiB
// default.
func TestLargeRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB round trip")
	}
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Data: big})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Load(ctx, storage.RootOid)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Serial != tid || !bytes.Equal(rec.Data, big) {
		t.Fatalf("64 MiB record came back as %d bytes", len(rec.Data))
	}
}

func TestStoreBatching(t *testing.T) {
	c, _ := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	oids, err := st.NewOids(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	txn, err := st.Begin(ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10<<10)
	// 300 records of 10 KiB: several batches; the buffer is reused, so a
	// batch that kept a reference would store the wrong bytes.
	for i, o := range oids {
		for j := range buf {
			buf[j] = byte(i)
		}
		if err := txn.Store(ctx, storage.Record{Oid: o, Data: buf}); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: oids}); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(ctx, storage.Record{Oid: oids[0], Data: buf}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("store after vote: %v", err)
	}
	if _, err := txn.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := txn.Abort(ctx); err != nil {
		t.Fatalf("abort after finish: %v", err)
	}
	if _, err := txn.Finish(ctx); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("finish twice: %v", err)
	}
	for i, o := range oids {
		rec, err := st.Load(ctx, o)
		if err != nil || len(rec.Data) != len(buf) || rec.Data[0] != byte(i) || rec.Data[len(buf)-1] != byte(i) {
			t.Fatalf("oid %s: %v", o, err)
		}
	}
}

func TestProcessExitFailsCalls(t *testing.T) {
	c, exit := serveInProcess(t, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	exit()
	start := time.Now()
	_, err = st.Load(ctx, storage.RootOid)
	if !errors.Is(err, ErrPluginUnavailable) || !strings.Contains(err.Error(), `plugin "test"`) {
		t.Fatalf("load after exit: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("failing took %s", time.Since(start))
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close after exit: %v", err)
	}
}

func TestConfigValuesRoundTrip(t *testing.T) {
	in := hcl.Values{
		"path":    "/var/Data.fs",
		"sync":    true,
		"ratio":   0.5,
		"size":    int64(64 << 20),
		"timeout": "20m0s",
		"tags":    []string{"a", "b"},
		"labels":  map[string]string{"k": "v"},
	}
	pbv, err := valuesToPB(in)
	if err != nil {
		t.Fatal(err)
	}
	out := valuesFromPB(pbv)
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("round trip:\n got %v\nwant %v", out, in)
	}
	for k, v := range in {
		if fmt.Sprintf("%T", out[k]) != fmt.Sprintf("%T", v) {
			t.Errorf("%s: type %T, want %T", k, out[k], v)
		}
	}
	if _, err := valuesToPB(hcl.Values{"bad": struct{}{}}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("unsupported type: %v", err)
	}
}

func TestConfigure(t *testing.T) {
	p := testPlugin()
	var got hcl.Values
	p.Config = hcl.Schema{Attributes: []hcl.Attribute{{Name: "region", Type: hcl.TypeString, Enum: []string{"eu", "us"}}}}
	p.Configure = func(_ context.Context, cfg hcl.Values) error {
		if cfg["region"] == "mars" {
			return fmt.Errorf("region %q is not served: %w", cfg["region"], storage.ErrInvalid)
		}
		got = cfg
		return nil
	}
	c, _ := serveInProcess(t, p)
	ctx := context.Background()
	d, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a := d.Config.Attribute("region"); a == nil || len(a.Enum) != 2 {
		t.Fatalf("config schema = %+v", d.Config)
	}
	if err := c.Configure(ctx, hcl.Values{"region": "eu"}); err != nil {
		t.Fatal(err)
	}
	if got["region"] != "eu" {
		t.Fatalf("plugin got %v", got)
	}
	err = c.Configure(ctx, hcl.Values{"region": "mars"})
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), `region "mars" is not served`) {
		t.Fatalf("bad setting: %v", err)
	}
	// A plugin without settings refuses some.
	c2, _ := serveInProcess(t, testPlugin())
	if err := c2.Configure(ctx, hcl.Values{"x": "y"}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("settings for a plugin without any: %v", err)
	}
}

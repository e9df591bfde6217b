package zhostcmd

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host"
	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/internal/busypoll"
)

// benchPhases are the phases of `zhost bench`, in the order they run.
var benchPhases = []string{"add", "update", "cold", "warm", "hot", "commit", "miss"}

// benchConfig is what a bench worker needs; the parent passes it on the
// worker's command line.
type benchConfig struct {
	Server      string
	Partition   string
	Objects     int
	Size        int
	Commits     int
	Misses      int
	Concurrency int
	Rounds      int
	// Warmup rounds run before the timed ones and are not counted.
	Warmup int
	// BusyPoll is the workers' client busy-poll window (0: off).
	BusyPoll time.Duration
}

// PhaseResult is one phase's figures in `zhost bench -json`.
type PhaseResult struct {
	// ObjectsPerSec is objects (or, for commit, transactions; for miss,
	// loads) per second, over all processes: the median of the rounds.
	ObjectsPerSec float64 `json:"objects_per_sec"`
	// P50Ms and P99Ms are latencies in milliseconds (commit and miss),
	// over every round.
	P50Ms float64 `json:"p50_ms,omitempty"`
	P99Ms float64 `json:"p99_ms,omitempty"`
	// Count is how many objects (or transactions, or loads) one round
	// timed, over all processes.
	Count int `json:"count"`
	// Seconds is the wall time of the median round (its slowest
	// process).
	Seconds float64 `json:"seconds"`
	// Rounds is ObjectsPerSec of each round, in the order they ran.
	Rounds []float64 `json:"rounds"`
}

// workerResult is what a worker reports for one phase.
type workerResult struct {
	Phase     string    `json:"phase"`
	Count     int       `json:"count"`
	Seconds   float64   `json:"seconds"`
	Latencies []float64 `json:"latencies_ms,omitempty"`
	Error     string    `json:"error,omitempty"`
}

func init() {
	var (
		serverAddr, configFile, partition, exe string
		objects, size, concurrency             int
		commits, misses, rounds, warmup        int
		busyPoll                               time.Duration
		asJSON, worker                         bool
	)
	RegisterCommand(&Command{
		Name:  "bench",
		Usage: "[-server ADDR | -config FILE] [-partition NAME] [-objects N] [-size BYTES] [-concurrency C] [-rounds R] [-warmup W] [-busy-poll D] [-json]",
		Short: "measure a storage server: add, update, cold, warm, hot, commit, miss",
		Long: `bench runs a zodbshootout-style benchmark against a running server
(-server) or against the server of a cluster.hcl that it starts itself
(-config). -concurrency C runs C separate client processes, each with its
own N objects; phases start together in every process. The phases run
-rounds R times (each round with new objects and new clients), after
-warmup W rounds that are run the same way but not counted (the first
round of a fresh server and worker runs up to 2x slower); each rate is
the median of the timed rounds, and
latencies are over every timed round. -busy-poll sets the workers'
client busy_poll (the most its reads poll, adapting; 0: off), which
defaults as a client block's does; with -config, to the server block's.

Phases, each in objects per second:
  add     create N objects in one transaction
  update  modify all N objects, one commit
  cold    a new client with an empty cache loads all N (batched prefetch)
  warm    objects in the client cache, read in a new transaction (snapshot reads)
  hot     objects already read in this transaction read again
  commit  one-object transactions (-commits of them): commits/s, p50, p99
  miss    one uncached object at a time (-misses loads): p50, p99

-json prints one object keyed by phase name.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&serverAddr, "server", "", "address of a running server (host:port)")
			fs.StringVar(&configFile, "config", "", "cluster.hcl whose server to start and measure")
			fs.StringVar(&partition, "partition", "main", "partition to use")
			fs.IntVar(&objects, "objects", 1000, "objects per process")
			fs.IntVar(&size, "size", 182, "bytes per object")
			fs.IntVar(&concurrency, "concurrency", 1, "client processes")
			fs.IntVar(&commits, "commits", 2000, "one-object transactions in the commit phase, per process")
			fs.IntVar(&misses, "misses", 2000, "loads in the miss phase, per process")
			fs.IntVar(&rounds, "rounds", 3, "times to run every phase (rates are the median round)")
			fs.IntVar(&warmup, "warmup", 1, "untimed rounds before the timed ones")
			fs.DurationVar(&busyPoll, "busy-poll", busypoll.Default, "client busy_poll of the workers (with -config: the config's server busy_poll); 0 turns it off")
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			fs.BoolVar(&worker, "worker", false, "internal: run as a bench worker process")
			fs.StringVar(&exe, "exe", "", "internal: zhost binary to run workers with (default: this one)")
		},
		Run: func(env *Env, fs *flag.FlagSet, args []string) int {
			cfg := benchConfig{Server: serverAddr, Partition: partition, Objects: objects, Size: size,
				Commits: commits, Misses: misses, Concurrency: concurrency, Rounds: rounds, Warmup: warmup, BusyPoll: busyPoll}
			if worker {
				return benchWorker(env, cfg)
			}
			if (serverAddr == "") == (configFile == "") || len(args) != 0 {
				fmt.Fprintln(env.Stderr, "zhost bench: give exactly one of -server ADDR or -config FILE")
				return ExitUsage
			}
			if objects < 1 || objects > 65536 || size < 1 || concurrency < 1 || concurrency > 256 || commits < 1 || misses < 1 ||
				rounds < 1 || rounds > 1000 || warmup < 0 || warmup > 100 || busyPoll < 0 || busyPoll > time.Millisecond {
				fmt.Fprintln(env.Stderr, "zhost bench: -objects must be 1..65536, -concurrency 1..256, -rounds 1..1000, -warmup 0..100, -busy-poll 0..1ms, -size, -commits and -misses positive")
				return ExitUsage
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if configFile != "" {
				addr, serverPoll, stopServer, code := benchStartServer(ctx, env, configFile)
				if code != ExitOK {
					return code
				}
				defer stopServer()
				cfg.Server = addr
				if !flagSet(fs, "busy-poll") {
					cfg.BusyPoll = serverPoll
				}
			}
			if exe == "" {
				var err error
				if exe, err = os.Executable(); err != nil {
					fmt.Fprintf(env.Stderr, "zhost bench: %v\n", err)
					return ExitFailure
				}
			}
			results, err := benchRun(ctx, env, exe, cfg)
			if err != nil {
				fmt.Fprintf(env.Stderr, "zhost bench: %v\n", err)
				return ExitFailure
			}
			benchPrint(env.Stdout, cfg, results, asJSON)
			return ExitOK
		},
	})
}

// benchStartServer starts the server node of a cluster.hcl in this
// process and returns its address.
// Its busy_poll is returned for the workers.
func benchStartServer(ctx context.Context, env *Env, file string) (string, time.Duration, func(), int) {
	cfg, code := loadConfig(ctx, env, "bench", file)
	if cfg == nil {
		return "", 0, nil, code
	}
	if cfg.Server == nil {
		fmt.Fprintf(env.Stderr, "zhost bench: %s has no server block\n", file)
		return "", 0, nil, ExitUsage
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(env.Stderr, "zhost bench: %v\n", err)
		return "", 0, nil, ExitFailure
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "bench-server", Level: hclog.Warn, Output: env.Stderr})
	sctx, cancel := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- host.RunNode(sctx, cfg, cfg.Server.Name, host.NodeOptions{
			Logger: logger, Exe: exe,
			Ready: func(a net.Addr) { ready <- a.String() },
		})
	}()
	stop := func() {
		cancel()
		<-done
	}
	select {
	case addr := <-ready:
		return addr, cfg.Server.BusyPoll, stop, ExitOK
	case err := <-done:
		cancel()
		fmt.Fprintf(env.Stderr, "zhost bench: start server from %s: %v\n", file, err)
		return "", 0, nil, ExitFailure
	case <-time.After(60 * time.Second):
		stop()
		fmt.Fprintf(env.Stderr, "zhost bench: server from %s not ready after 60s\n", file)
		return "", 0, nil, ExitFailure
	}
}

// benchProc is one worker process as the parent sees it.
type benchProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func benchRun(ctx context.Context, env *Env, exe string, cfg benchConfig) (map[string]PhaseResult, error) {
	procs := make([]*benchProc, 0, cfg.Concurrency)
	defer func() {
		for _, p := range procs {
			p.stdin.Close()
			done := make(chan struct{})
			go func() { p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				p.cmd.Process.Kill()
				<-done
			}
		}
	}()
	// Workers' stderr goes to ours, one write at a time.
	stderr := &lockedWriter{w: env.Stderr}
	for range cfg.Concurrency {
		cmd := exec.CommandContext(ctx, exe, "bench", "-worker", "-server", cfg.Server, "-partition", cfg.Partition,
			"-objects", fmt.Sprint(cfg.Objects), "-size", fmt.Sprint(cfg.Size),
			"-commits", fmt.Sprint(cfg.Commits), "-misses", fmt.Sprint(cfg.Misses), "-rounds", fmt.Sprint(cfg.Warmup+cfg.Rounds),
			"-busy-poll", cfg.BusyPoll.String())
		cmd.Stderr = stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start worker %s: %w", exe, err)
		}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		procs = append(procs, &benchProc{cmd: cmd, stdin: stdin, lines: sc})
	}
	rounds := make(map[string][]PhaseResult, len(benchPhases))
	latencies := make(map[string][]float64, len(benchPhases))
	for round := 0; round < cfg.Warmup+cfg.Rounds; round++ {
		for _, phase := range benchPhases {
			res, lat, err := benchPhase(procs, phase)
			if err != nil {
				return nil, fmt.Errorf("round %d: %w", round+1, err)
			}
			if round < cfg.Warmup {
				continue
			}
			rounds[phase] = append(rounds[phase], res)
			latencies[phase] = append(latencies[phase], lat...)
		}
	}
	out := make(map[string]PhaseResult, len(benchPhases))
	for _, phase := range benchPhases {
		out[phase] = benchCombine(rounds[phase], latencies[phase])
	}
	return out, nil
}

// benchCombine sums up the rounds of one phase: the median round's rate,
// count and time, and latency percentiles over every round.
func benchCombine(rounds []PhaseResult, lat []float64) PhaseResult {
	res := PhaseResult{}
	for _, r := range rounds {
		res.Rounds = append(res.Rounds, r.ObjectsPerSec)
	}
	if len(rounds) > 0 {
		byRate := slices.Clone(rounds)
		slices.SortFunc(byRate, func(a, b PhaseResult) int { return cmp.Compare(a.ObjectsPerSec, b.ObjectsPerSec) })
		median := byRate[len(byRate)/2]
		res.ObjectsPerSec, res.Count, res.Seconds = median.ObjectsPerSec, median.Count, median.Seconds
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50Ms = lat[len(lat)/2]
		res.P99Ms = lat[min(len(lat)-1, int(math.Ceil(float64(len(lat))*0.99))-1)]
	}
	return res
}

// benchPhase runs one phase in every worker at once and returns its
// figures and every latency the workers measured.
func benchPhase(procs []*benchProc, phase string) (PhaseResult, []float64, error) {
	// Barrier: every worker says it is ready, then all go at once.
	for i, p := range procs {
		line, err := benchReadLine(p)
		if err != nil {
			return PhaseResult{}, nil, fmt.Errorf("worker %d before %s: %w", i, phase, err)
		}
		if line != "ready "+phase {
			return PhaseResult{}, nil, fmt.Errorf("worker %d: expected ready %s, got %q", i, phase, line)
		}
	}
	for _, p := range procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			return PhaseResult{}, nil, fmt.Errorf("start %s: %w", phase, err)
		}
	}
	var total int
	var longest float64
	var lat []float64
	for i, p := range procs {
		line, err := benchReadLine(p)
		if err != nil {
			return PhaseResult{}, nil, fmt.Errorf("worker %d in %s: %w", i, phase, err)
		}
		var r workerResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return PhaseResult{}, nil, fmt.Errorf("worker %d in %s: bad result %q: %w", i, phase, line, err)
		}
		if r.Error != "" {
			return PhaseResult{}, nil, fmt.Errorf("worker %d in %s: %s", i, phase, r.Error)
		}
		total += r.Count
		longest = max(longest, r.Seconds)
		lat = append(lat, r.Latencies...)
	}
	res := PhaseResult{Count: total, Seconds: longest}
	if longest > 0 {
		res.ObjectsPerSec = float64(total) / longest
	}
	return res, lat, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func benchReadLine(p *benchProc) (string, error) {
	if !p.lines.Scan() {
		if err := p.lines.Err(); err != nil {
			return "", err
		}
		return "", errors.New("worker exited (see its error above)")
	}
	return strings.TrimSpace(p.lines.Text()), nil
}

func benchPrint(w io.Writer, cfg benchConfig, res map[string]PhaseResult, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	fmt.Fprintf(w, "zhost bench: server %s, partition %q, %d objects of %d bytes, %d process(es), median of %d round(s) after %d warm-up round(s), busy_poll %s\n",
		cfg.Server, cfg.Partition, cfg.Objects, cfg.Size, cfg.Concurrency, cfg.Rounds, cfg.Warmup, cfg.BusyPoll)
	for _, ph := range benchPhases {
		r := res[ph]
		unit := "objects/s"
		switch ph {
		case "commit":
			unit = "commits/s"
		case "miss":
			unit = "loads/s"
		}
		fmt.Fprintf(w, "  %-7s %12.0f %-10s", ph, r.ObjectsPerSec, unit)
		if r.P50Ms > 0 {
			fmt.Fprintf(w, "  p50 %.3f ms  p99 %.3f ms", r.P50Ms, r.P99Ms)
		}
		if len(r.Rounds) > 1 {
			fmt.Fprintf(w, "  (rounds %.0f..%.0f)", slices.Min(r.Rounds), slices.Max(r.Rounds))
		}
		fmt.Fprintln(w)
	}
}

// benchWorker runs the phases in this process, synchronized with the
// parent over stdin/stdout.
func benchWorker(env *Env, cfg benchConfig) int {
	in := bufio.NewScanner(env.Stdin)
	var outMu sync.Mutex
	emit := func(v any) {
		outMu.Lock()
		defer outMu.Unlock()
		b, _ := json.Marshal(v)
		fmt.Fprintf(env.Stdout, "%s\n", b)
	}
	ctx := context.Background()
	w := &benchState{cfg: cfg}
	defer w.close()
	for range max(cfg.Rounds, 1) {
		for _, phase := range benchPhases {
			if err := w.prepare(ctx, phase); err != nil {
				fmt.Fprintf(env.Stderr, "zhost bench worker: prepare %s: %v\n", phase, err)
				return ExitFailure
			}
			fmt.Fprintf(env.Stdout, "ready %s\n", phase)
			if !in.Scan() || strings.TrimSpace(in.Text()) != "go" {
				return ExitFailure
			}
			r := w.run(ctx, phase)
			emit(r)
			if r.Error != "" {
				return ExitFailure
			}
		}
	}
	return ExitOK
}

// benchState is one worker's objects and clients.
type benchState struct {
	cfg     benchConfig
	c       *client.Client // the long-lived client (add, update, commit)
	cold    *client.Client // the client of cold, warm and hot
	miss    *client.Client // a client without cache
	oids    []storage.Oid
	serials map[storage.Oid]storage.Tid
	data    []byte
}

func (w *benchState) open(ctx context.Context, cacheSize int64) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return client.Open(ctx, client.Options{Addr: w.cfg.Server, Partition: w.cfg.Partition, Name: "bench", CacheSize: cacheSize, BusyPoll: w.cfg.BusyPoll})
}

func (w *benchState) close() {
	for _, c := range []*client.Client{w.c, w.cold, w.miss} {
		if c != nil {
			c.Close()
		}
	}
	w.c, w.cold, w.miss = nil, nil, nil
}

// prepare does the untimed set-up of a phase.
func (w *benchState) prepare(ctx context.Context, phase string) error {
	var err error
	switch phase {
	case "add":
		w.close() // the previous round's clients
		if w.c, err = w.open(ctx, 0); err != nil {
			return err
		}
		w.data = make([]byte, w.cfg.Size)
		rand.Read(w.data)
		w.serials = make(map[storage.Oid]storage.Tid, w.cfg.Objects)
		if w.oids, err = w.c.NewOids(ctx, w.cfg.Objects); err != nil {
			return err
		}
		return w.anchor(ctx)
	case "cold":
		w.cold, err = w.open(ctx, 0)
	case "miss":
		w.miss, err = w.open(ctx, -1)
	}
	return err
}

// anchor makes the worker's objects reachable from the root before they
// exist, so a backend that collects garbage continuously (packless) keeps
// them: a new container object references them and the root references
// the container. The root's data is left as it is (created only if
// missing); workers racing on the root retry on conflict.
func (w *benchState) anchor(ctx context.Context) error {
	cont, err := w.c.NewOids(ctx, 1)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		root, err := w.c.Load(ctx, storage.RootOid)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			root = storage.Record{Oid: storage.RootOid, Data: []byte("zhost bench root")}
		case err != nil:
			return err
		}
		root.Refs = append(root.Refs, cont[0])
		txn, err := w.c.Begin(ctx, storage.TxMeta{User: "bench", Description: "zhost bench: anchor objects"})
		if err != nil {
			return err
		}
		txn.Store(ctx, root)
		txn.Store(ctx, storage.Record{Oid: cont[0], Data: []byte("zhost bench objects"), Refs: w.oids})
		err = txn.Vote(ctx)
		if err == nil {
			_, err = txn.Finish(ctx)
			return err
		}
		txn.Abort(ctx)
		if !errors.Is(err, storage.ErrConflict) || attempt >= 100 {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
	}
}

func (w *benchState) commit(ctx context.Context, oids []storage.Oid) (storage.Tid, error) {
	txn, err := w.c.Begin(ctx, storage.TxMeta{User: "bench", Description: "zhost bench"})
	if err != nil {
		return 0, err
	}
	for _, o := range oids {
		if err := txn.Store(ctx, storage.Record{Oid: o, Serial: w.serials[o], Data: w.data}); err != nil {
			txn.Abort(ctx)
			return 0, err
		}
	}
	// One partition, one resource manager: one-phase commit, as
	// host/db commits such a transaction.
	tid, err := storage.CommitOnePhase(ctx, txn)
	if err != nil {
		txn.Abort(ctx)
		return 0, err
	}
	for _, o := range oids {
		w.serials[o] = tid
	}
	return tid, nil
}

func (w *benchState) run(ctx context.Context, phase string) (r workerResult) {
	r.Phase = phase
	start := time.Now()
	var err error
	switch phase {
	case "add":
		_, err = w.commit(ctx, w.oids)
		r.Count = len(w.oids)
	case "update":
		_, err = w.commit(ctx, w.oids)
		r.Count = len(w.oids)
	case "cold":
		if err = w.cold.Prefetch(ctx, w.oids); err == nil {
			for _, o := range w.oids {
				if _, err = w.cold.Load(ctx, o); err != nil {
					break
				}
			}
		}
		r.Count = len(w.oids)
	case "warm":
		var snap storage.Tid
		if snap, err = w.cold.LastTid(ctx); err == nil {
			for _, o := range w.oids {
				if _, _, err = w.cold.LoadBefore(ctx, o, snap+1); err != nil {
					break
				}
			}
		}
		r.Count = len(w.oids)
	case "hot":
		const rounds = 10
		snap, _ := w.cold.LastTid(ctx)
		for i := 0; i < rounds && err == nil; i++ {
			for _, o := range w.oids {
				if _, _, err = w.cold.LoadBefore(ctx, o, snap+1); err != nil {
					break
				}
			}
		}
		r.Count = rounds * len(w.oids)
	case "commit":
		r.Latencies = make([]float64, 0, w.cfg.Commits)
		for i := 0; i < w.cfg.Commits && err == nil; i++ {
			t0 := time.Now()
			_, err = w.commit(ctx, w.oids[i%len(w.oids):i%len(w.oids)+1])
			r.Latencies = append(r.Latencies, float64(time.Since(t0).Nanoseconds())/1e6)
		}
		r.Count = w.cfg.Commits
	case "miss":
		r.Latencies = make([]float64, 0, w.cfg.Misses)
		for i := 0; i < w.cfg.Misses && err == nil; i++ {
			t0 := time.Now()
			_, err = w.miss.Load(ctx, w.oids[i%len(w.oids)])
			r.Latencies = append(r.Latencies, float64(time.Since(t0).Nanoseconds())/1e6)
		}
		r.Count = w.cfg.Misses
	}
	r.Seconds = time.Since(start).Seconds()
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

package sdk

import (
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/zhostdb/zhost/host/storage"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBatchEncoding measures the CPU cost of a batch of 1000
// 182-byte records (the `zhost bench` add) on the wire, both ways: one
// protobuf message per record against packed records. Each op is the
// host building and marshaling the Vote request plus the plugin
// unmarshaling it and turning it into storage records. cpu-ns/op counts
// the whole process (garbage collection included), which on a shared
// machine is steadier than the wall time.
func BenchmarkBatchEncoding(b *testing.B) {
	recs := make([]storage.Record, 1000)
	for i := range recs {
		recs[i] = storage.Record{Oid: storage.Oid(i + 1), Serial: storage.Tid(1000 + i), Data: make([]byte, 182), Refs: []storage.Oid{storage.Oid(i + 2)}}
	}
	b.Run("messages", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime(b)
		defer func() { b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op") }()
		for b.Loop() {
			req := &pb.StoreRequest{Txn: 7}
			for _, r := range recs {
				req.Records = append(req.Records, recordToPB(r))
			}
			buf, err := proto.Marshal(&pb.Call{Id: 1, Op: &pb.Call_Vote{Vote: req}})
			if err != nil {
				b.Fatal(err)
			}
			var call pb.Call
			if err := proto.Unmarshal(buf, &call); err != nil {
				b.Fatal(err)
			}
			out, err := requestRecords(call.GetVote())
			if err != nil || len(out) != len(recs) {
				b.Fatal(len(out), err)
			}
		}
	})
	b.Run("packed", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime(b)
		defer func() { b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op") }()
		for b.Loop() {
			var p packedBatch
			for _, r := range recs {
				p.add(r)
			}
			req := &pb.StoreRequest{Txn: 7, PackedRecords: p.bytes()}
			buf, err := proto.Marshal(&pb.Call{Id: 1, Op: &pb.Call_Vote{Vote: req}})
			if err != nil {
				b.Fatal(err)
			}
			var call pb.Call
			if err := proto.Unmarshal(buf, &call); err != nil {
				b.Fatal(err)
			}
			out, err := requestRecords(call.GetVote())
			if err != nil || len(out) != len(recs) {
				b.Fatal(len(out), err)
			}
		}
	})
	// The plugin's side alone: unmarshal and turn into storage records.
	for _, packed := range []bool{false, true} {
		req := &pb.StoreRequest{Txn: 7}
		name := "decode-messages"
		if packed {
			var p packedBatch
			for _, r := range recs {
				p.add(r)
			}
			req.PackedRecords, name = p.bytes(), "decode-packed"
		} else {
			for _, r := range recs {
				req.Records = append(req.Records, recordToPB(r))
			}
		}
		buf, err := proto.Marshal(&pb.Call{Id: 1, Op: &pb.Call_Vote{Vote: req}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			defer func() { b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op") }()
			for b.Loop() {
				var call pb.Call
				if err := proto.Unmarshal(buf, &call); err != nil {
					b.Fatal(err)
				}
				out, err := requestRecords(call.GetVote())
				if err != nil || len(out) != len(recs) {
					b.Fatal(len(out), err)
				}
			}
		})
	}
}

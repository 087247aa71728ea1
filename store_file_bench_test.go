package wxtoken

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fsPlantRecords writes n valid records straight to dir, without the fsyncs a
// Save costs, so that a benchmark can start from a full folder quickly.
func fsPlantRecords(tb testing.TB, dir string, n int, created time.Time) []string {
	tb.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = scaleKey(i)
		data, err := json.Marshal(fsTestToken("planted-"+strconv.Itoa(i), created.UTC()))
		require.NoError(tb, err)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, keys[i]+".json"), data, 0o600))
	}
	return keys
}

// BenchmarkFileStoreFolderSize measures Load, Save and Lock of one key in a
// folder of 1,000 and of 100,000 records: whether a flat folder slows down as
// it fills.
func BenchmarkFileStoreFolderSize(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		dir := b.TempDir()
		keys := fsPlantRecords(b, dir, n, time.Now().Add(-time.Hour))
		s, err := NewFileStore(dir)
		require.NoError(b, err)
		ctx := context.Background()
		name := strconv.Itoa(n/1000) + "k"
		b.Run(name+"/Load", func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := s.Load(ctx, keys[i%n]); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
		})
		b.Run(name+"/LoadMissing", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Load(ctx, "absent"); err == nil {
					b.Fatal("found")
				}
			}
		})
		b.Run(name+"/Lock", func(b *testing.B) {
			i := 0
			for b.Loop() {
				unlock, err := s.Lock(ctx, keys[i%n], time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				_ = unlock(ctx)
				i += 7919
			}
		})
		b.Run(name+"/Save", func(b *testing.B) {
			i := 0
			for b.Loop() {
				if err := s.Save(ctx, keys[i%n], fsTestToken("saved", time.Now())); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
		})
	}
}

// BenchmarkFileStoreSaveParallel saves distinct keys of a 1,000-key folder
// from 64 goroutines: what renewing many keys at once costs. dirsyncs/op is
// the folder fsyncs per Save that the group commit left.
func BenchmarkFileStoreSaveParallel(b *testing.B) {
	const n = 1_000
	dir := b.TempDir()
	keys := fsPlantRecords(b, dir, n, time.Now().Add(-time.Hour))
	s, err := NewFileStore(dir)
	require.NoError(b, err)
	ctx := context.Background()
	var next atomic.Int64
	before := s.syncer.count()
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			tok := fsTestToken("saved-"+strconv.FormatInt(i, 10), time.Now())
			if err := s.Save(ctx, keys[i%n], tok); err != nil && !errors.Is(err, ErrNewerToken) {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(s.syncer.count()-before)/float64(b.N), "dirsyncs/op")
}

// BenchmarkFileStoreLoadMany reads 1,000 keys in one batch.
func BenchmarkFileStoreLoadMany(b *testing.B) {
	dir := b.TempDir()
	keys := fsPlantRecords(b, dir, 1_000, time.Now())
	s, err := NewFileStore(dir)
	require.NoError(b, err)
	ctx := context.Background()
	for b.Loop() {
		res, err := s.LoadMany(ctx, keys)
		if err != nil || res[len(res)-1].Err != nil {
			b.Fatal(err, res[len(res)-1].Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}

// BenchmarkFileStoreLoadLoop reads the same 1,000 keys with one Load each: what
// LoadMany is measured against.
func BenchmarkFileStoreLoadLoop(b *testing.B) {
	dir := b.TempDir()
	keys := fsPlantRecords(b, dir, 1_000, time.Now())
	s, err := NewFileStore(dir)
	require.NoError(b, err)
	ctx := context.Background()
	for b.Loop() {
		for _, key := range keys {
			if _, err := s.Load(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}

package dist_test

import (
	"reflect"
	"strings"
	"testing"

	"seqbench/dist"
)

func TestRowsCoverTheBatchOnce(t *testing.T) {
	for _, tc := range []struct{ batch, size int }{{8, 1}, {8, 2}, {12, 4}, {6, 6}} {
		next := 0
		for r := range tc.size {
			lo, hi, err := dist.Rows(tc.batch, tc.size, r)
			if err != nil {
				t.Fatalf("Rows(%d, %d, %d): %v", tc.batch, tc.size, r, err)
			}
			if lo != next || hi-lo != tc.batch/tc.size {
				t.Fatalf("Rows(%d, %d, %d) = [%d, %d), want to start at %d with %d rows", tc.batch, tc.size, r, lo, hi, next, tc.batch/tc.size)
			}
			next = hi
		}
		if next != tc.batch {
			t.Fatalf("batch %d over %d ranks: rows end at %d", tc.batch, tc.size, next)
		}
	}
}

func TestRowsRefusesUnevenBatch(t *testing.T) {
	for _, tc := range []struct {
		batch, size, rank int
		want              []string
	}{
		{10, 4, 0, []string{"train.batch_size", "10", "4 ranks"}},
		{2, 4, 1, []string{"train.batch_size", "2", "4 ranks"}},
		{8, 4, 4, []string{"rank 4"}},
		{8, 0, 0, []string{"world size 0"}},
	} {
		_, _, err := dist.Rows(tc.batch, tc.size, tc.rank)
		if err == nil {
			t.Fatalf("Rows(%d, %d, %d): no error", tc.batch, tc.size, tc.rank)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Rows(%d, %d, %d): %q does not name %q", tc.batch, tc.size, tc.rank, err, w)
			}
		}
	}
}

func TestPlanBuckets(t *testing.T) {
	// Four-byte elements, 100-byte buckets (25 elements).
	lens := []int{10, 5, 30, 0, 8, 12, 4}
	got := dist.PlanBuckets(lens, 4, 100)
	want := []dist.Bucket{
		{Params: []int{6, 5, 4}, Len: 24}, // 4+12+8; the empty 3 is skipped
		{Params: []int{2}, Len: 30},       // larger than a bucket: alone
		{Params: []int{1, 0}, Len: 15},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PlanBuckets = %+v, want %+v", got, want)
	}
	// Every non-empty parameter is in exactly one bucket.
	seen := map[int]int{}
	for _, b := range dist.PlanBuckets(lens, 2, 30) {
		n := 0
		for _, p := range b.Params {
			seen[p]++
			n += lens[p]
		}
		if n != b.Len || (len(b.Params) > 1 && int64(n)*2 > 30) {
			t.Fatalf("bucket %+v: %d elements", b, n)
		}
	}
	for i, n := range lens {
		if want := min(n, 1); seen[i] != want {
			t.Fatalf("parameter %d is in %d buckets, want %d", i, seen[i], want)
		}
	}
	if got := dist.PlanBuckets(lens, 4, dist.DefaultBucketBytes); len(got) != 1 || got[0].Len != 69 {
		t.Fatalf("everything fits one default bucket, got %+v", got)
	}
}

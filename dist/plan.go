package dist

import "fmt"

// Rows is the part of a global batch of batch sequences that rank trains
// on when size ranks share it: rows [lo, hi), batch/size of them, rank
// after rank. A batch that does not divide evenly is an error naming the
// batch size and the world size (the ranks' gradients are averaged with
// equal weights, so every rank takes as many sequences).
func Rows(batch, size, rank int) (lo, hi int, err error) {
	switch {
	case size < 1:
		return 0, 0, fmt.Errorf("dist: world size %d (need at least 1)", size)
	case rank < 0 || rank >= size:
		return 0, 0, fmt.Errorf("dist: rank %d is not one of the %d ranks", rank, size)
	case batch < size || batch%size != 0:
		return 0, 0, fmt.Errorf("field train.batch_size: %d is not allowed (a multiple of the world size, %d ranks, so that each takes batch_size/%d sequences)", batch, size, size)
	}
	per := batch / size
	return rank * per, (rank + 1) * per, nil
}

// DefaultBucketBytes is the size gradients are gathered into for one
// all-reduce (PyTorch DDP's bucket_cap_mb default, 25 MB): large enough
// that a call's fixed cost is small against its transfer, small enough
// that the first buckets can travel while the backward still runs.
const DefaultBucketBytes = 25 << 20

// Bucket is one all-reduce of the gradient plan: the parameters whose
// gradients it carries (indices into the list given to PlanBuckets), in
// the order they lie in the bucket, and its length in elements.
type Bucket struct {
	Params []int
	Len    int
}

// PlanBuckets groups gradients of lens elements (of elemBytes bytes each),
// listed in parameter order, into buckets of at most capBytes for the
// all-reduce. It walks the parameters in reverse, the order the backward
// finishes their gradients, so that bucket 0 is the first one ready; a
// parameter larger than capBytes has a bucket of its own. Parameters of
// length 0 are left out.
func PlanBuckets(lens []int, elemBytes, capBytes int64) []Bucket {
	if elemBytes < 1 || capBytes < 1 {
		panic(fmt.Sprintf("dist.PlanBuckets: element size %d and bucket size %d must be positive", elemBytes, capBytes))
	}
	var plan []Bucket
	var cur Bucket
	for i := len(lens) - 1; i >= 0; i-- {
		n := lens[i]
		if n == 0 {
			continue
		}
		if cur.Len > 0 && int64(cur.Len+n)*elemBytes > capBytes {
			plan = append(plan, cur)
			cur = Bucket{}
		}
		cur.Params = append(cur.Params, i)
		cur.Len += n
	}
	if cur.Len > 0 {
		plan = append(plan, cur)
	}
	return plan
}

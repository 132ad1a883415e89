package train

// SetBucketBytes sets the gradient bucket size until the returned function
// restores it.
func SetBucketBytes(n int64) (restore func()) {
	old := bucketBytes
	bucketBytes = n
	return func() { bucketBytes = old }
}

package identity

// Test hooks for the external identity_test package.

// SetTestRange shrinks the allocation range of o to [first, last].
func SetTestRange(o *AllocatorOptions, first, last NumericIdentity) {
	o.testRange = [2]NumericIdentity{first, last}
}

// CacheLen is the number of identities in a's cache.
func CacheLen(a *Allocator) int { return a.cache.len() }

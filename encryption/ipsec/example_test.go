package ipsec_test

import (
	"fmt"

	"github.com/strait-net/strait/encryption/ipsec"
)

// XFRM objects per node as the mesh grows (one /24 pod CIDR per node, one
// block CIDR), from DesiredState itself.
func ExampleMeasureFootprint() {
	fmt.Println("remotes states policies states(rotation) policies(rotation)")
	for _, n := range []int{1, 3, 10, 100, 1000} {
		fp, err := ipsec.MeasureFootprint(n, false)
		if err != nil {
			panic(err)
		}
		rot, err := ipsec.MeasureFootprint(n, true)
		if err != nil {
			panic(err)
		}
		fmt.Println(n, fp.States, fp.Policies, rot.States, rot.Policies)
	}
	// Output:
	// remotes states policies states(rotation) policies(rotation)
	// 1 2 5 4 5
	// 3 6 11 12 11
	// 10 20 32 40 32
	// 100 200 302 400 302
	// 1000 2000 3002 4000 3002
}

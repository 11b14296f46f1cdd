package remoteconfig_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/strait-net/strait/clustermesh/remoteconfig"
)

func ExampleScan() {
	dir, err := os.MkdirTemp("", "clustermesh")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	files := map[string]string{
		"cluster2": "endpoints:\n- http://192.0.2.2:2379\n",
		"cluster3": "endpoints:\n- http://192.0.2.3\n", // no port
		"ca.crt":   "-----BEGIN CERTIFICATE-----\n",    // not a cluster file
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			panic(err)
		}
	}
	snap, err := remoteconfig.Scan(dir)
	if err != nil {
		panic(err)
	}
	fmt.Println(snap.Clusters["cluster2"].Config.Endpoints)
	fmt.Println(len(snap.Clusters), len(snap.Invalid))
	// Output:
	// [http://192.0.2.2:2379]
	// 1 1
}

package lab

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Etcd returns an etcd client of cluster c's strait-apiserver as its admin
// user, dialling from inside the apiserver's namespace (the lab's host
// namespace has no route to the underlay). The caller closes it.
func (l *Lab) Etcd(c Cluster) (*clientv3.Client, error) {
	return etcdClient(c)
}

func etcdClient(c Cluster) (*clientv3.Client, error) {
	tlsInfo := transport.TLSInfo{
		TrustedCAFile: filepath.Join(c.CertDir, "ca.crt"),
		CertFile:      filepath.Join(c.CertDir, "admin.crt"),
		KeyFile:       filepath.Join(c.CertDir, "admin.key"),
	}
	tlsCfg, err := tlsInfo.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client of %s: %w", c.Name, err)
	}
	ns := c.Netns
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{c.Endpoint},
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return DialIn(ctx, ns, "tcp", addr)
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client of %s: %w", c.Name, err)
	}
	return cli, nil
}

// etcdKeys lists the keys under prefix in cluster c's etcd.
func etcdKeys(ctx context.Context, cli *clientv3.Client, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys, nil
}

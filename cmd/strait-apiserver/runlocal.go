package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strait-net/strait/clustermesh/apiserver"
	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// The cluster run-local starts.
const (
	localCluster = "local"
	localID      = identity.ClusterID(1)
)

func validateClusterName(name string) error {
	return schema.ValidateClusterName(name, 0)
}

func newRunLocalCommand(g *globals) *cobra.Command {
	var dir, clientAddr, peerAddr string
	cmd := &cobra.Command{
		Use:   "run-local",
		Short: `Generate certificates into --dir if absent and run cluster "local" (ID 1) with an embedded etcd on loopback`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if dir == "" {
				return flagError("dir", errors.New("required"))
			}
			for flag, addr := range map[string]string{"client-addr": clientAddr, "peer-addr": peerAddr} {
				if err := checkLoopbackAddr(addr); err != nil {
					return flagError(flag, err)
				}
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return flagError("dir", err)
			}
			return runLocal(cmd.Context(), log, cmd.OutOrStdout(), abs, clientAddr, peerAddr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "directory for certificates (<dir>/certs) and etcd data (<dir>/etcd) (required)")
	fl.StringVar(&clientAddr, "client-addr", "127.0.0.1:2379", "loopback host:port for clients; a free port is used if it is busy (port 0: always a free port)")
	fl.StringVar(&peerAddr, "peer-addr", "127.0.0.1:2380", "loopback host:port for the raft peer listener; a free port is used if it is busy")
	return cmd
}

func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: run-local listens on loopback only", addr)
	}
	return nil
}

// runLocal lays out certificates, starts the apiserver and prints how to
// reach it once it is ready; it returns when ctx ends.
func runLocal(ctx context.Context, log *slog.Logger, out io.Writer, dir, clientAddr, peerAddr string) error {
	files, written, err := certs.WriteClusterDir(certs.ClusterDirOptions{Cluster: localCluster, Dir: filepath.Join(dir, "certs")})
	if err != nil {
		return err
	}
	if len(written) > 0 {
		log.Info("certificates written", "dir", files.Dir, "files", len(written))
	}
	base := apiserver.Config{
		ClusterName:    localCluster,
		ClusterID:      localID,
		Max:            identity.ClusterMax255,
		DataDir:        filepath.Join(dir, "etcd"),
		ServerCertFile: files.ServerCert,
		ServerKeyFile:  files.ServerKey,
		ClientCAFile:   files.CACert,
		AdminCertFile:  files.AdminCert,
		AdminKeyFile:   files.AdminKey,
		SyncedCanaries: apiserver.DefaultSyncedCanaries,
	}
	// The wanted ports may be busy; pick free ones then, and once more if
	// another process takes a picked port before etcd binds it.
	for attempt := 0; ; attempt++ {
		cfg := base
		cfg.ListenClientURLs = []string{"https://" + pickAddr(log, clientAddr, attempt > 0)}
		cfg.ListenPeerURL = "http://" + pickAddr(log, peerAddr, attempt > 0)
		s, err := apiserver.New(log, cfg)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case <-s.Ready():
			printHowToReach(out, s, files, cfg.DataDir)
			return <-done
		case err := <-done:
			if errors.Is(err, syscall.EADDRINUSE) && attempt < 3 && ctx.Err() == nil {
				log.Warn("address taken while starting, retrying on free ports", "error", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return err
		}
	}
}

// pickAddr returns want if it can be bound now (and !forceFree and its
// port is not 0), else a free port on the same host.
func pickAddr(log *slog.Logger, want string, forceFree bool) string {
	host, port, _ := net.SplitHostPort(want) // checked by checkLoopbackAddr
	if !forceFree && port != "0" {
		if l, err := net.Listen("tcp", want); err == nil {
			l.Close()
			return want
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return want // let etcd report the bind error
	}
	defer l.Close()
	got := l.Addr().String()
	if port != "0" {
		log.Warn("address busy, using a free port", "wanted", want, "using", got)
	}
	return got
}

func printHowToReach(w io.Writer, s *apiserver.Server, f certs.Files, dataDir string) {
	ep := s.Endpoints()[0]
	u, _ := url.Parse(ep)
	fmt.Fprintf(w, `strait-apiserver: cluster %q (ID %d) serving etcd at %s
  etcd data:    %s
  certificates: %s (ca.crt; admin, local and remote .crt/.key)

Read everything as admin-%s:
  etcdctl --endpoints %s --cacert %s --cert %s --key %s get --prefix cilium/

As another cluster would (user "remote", read-only on cilium/state/, its own config and canaries, cilium/.heartbeat):
  etcdctl --endpoints %s --cacert %s --cert %s --key %s get cilium/cluster-config/%s

From Go (github.com/strait-net/strait/clustermesh/kvstore):
  c, err := kvstore.New(ctx, log, kvstore.Config{
      Endpoints:     []string{%q},
      TrustedCAFile: %q,
      CertFile:      %q,
      KeyFile:       %q,
  })

Listening on %s; Ctrl-C stops it.
`,
		localCluster, localID, ep, dataDir, f.Dir,
		localCluster,
		ep, f.CACert, f.AdminCert, f.AdminKey,
		ep, f.CACert, f.RemoteCert, f.RemoteKey, localCluster,
		ep, f.CACert, f.AdminCert, f.AdminKey,
		u.Host)
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// vethPair creates two namespaces joined by a veth, 192.0.2.1 and .2/24.
func vethPair(t *testing.T) (a, b string) {
	t.Helper()
	needRoot(t)
	ctx := context.Background()
	p := fmt.Sprintf("%st%dtr", Prefix, os.Getpid()%100000)
	a, b = p+"a", p+"b"
	for _, ns := range []string{a, b} {
		if err := createNetns(ctx, ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteNetns(context.Background(), ns) })
	}
	nb, err := netns.GetFromName(b)
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	err = Do(a, func() error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(nb))})
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, ns := range []string{a, b} {
		err := Do(ns, func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			addr, _ := netlink.ParseAddr(fmt.Sprintf("192.0.2.%d/24", i+1))
			if err := netlink.AddrAdd(l, addr); err != nil {
				return err
			}
			return netlink.LinkSetUp(l)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func TestTraffic(t *testing.T) {
	a, b := vethPair(t)
	ctx := testkit.Context(t, time.Minute)
	dstB := netip.MustParseAddr("192.0.2.2")

	t.Run("echo", func(t *testing.T) {
		srv, err := StartEchoServer(b, 7000)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if err := Echo(ctx, a, netip.AddrPortFrom(dstB, 7000), []byte("hello through a veth")); err != nil {
			t.Fatal(err)
		}
		if err := Echo(ctx, a, netip.AddrPortFrom(dstB, 7001), []byte("x")); err == nil {
			t.Error("echo to a closed port succeeded")
		}
	})
	t.Run("ping", func(t *testing.T) {
		if err := Ping(ctx, a, dstB, 77, 1, []byte("ping payload")); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if err := Ping(short, a, netip.MustParseAddr("192.0.2.99"), 77, 2, nil); err == nil {
			t.Error("ping to an absent address succeeded")
		}
	})
	t.Run("stream", func(t *testing.T) {
		cfg := StreamConfig{BlockSize: 1000, Marker: []byte("stream-marker"), Blocks: 5000}
		srv, err := StartStreamServer(b, 7002, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		st, err := StartStream(ctx, a, netip.AddrPortFrom(dstB, 7002), cfg)
		if err != nil {
			t.Fatal(err)
		}
		<-st.Done()
		sent, err := st.Stop()
		if err != nil {
			t.Fatal(err)
		}
		res, err := srv.Wait(ctx)
		if err != nil || res.Err != nil {
			t.Fatalf("server: %v %v", err, res.Err)
		}
		st.Close()
		if sent != 5000 || res.Blocks != sent || res.Bytes != int64(sent*1000) {
			t.Errorf("sent %d, received %d blocks %d bytes", sent, res.Blocks, res.Bytes)
		}
	})
	t.Run("stream detects corruption", func(t *testing.T) {
		cfg := StreamConfig{BlockSize: 64}
		srv, err := StartStreamServer(b, 7003, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		c, err := DialIn(ctx, a, "tcp4", "192.0.2.2:7003")
		if err != nil {
			t.Fatal(err)
		}
		blk := make([]byte, 64)
		fillBlock(blk, 0, nil)
		c.Write(blk)
		fillBlock(blk, 2, nil) // block 1 lost
		c.Write(blk)
		c.Close()
		res, err := srv.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Blocks != 1 || !errors.Is(res.Err, ErrStreamData) {
			t.Errorf("result %+v, want 1 block and ErrStreamData", res)
		}
	})
}
